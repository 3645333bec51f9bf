namespace Ddpo.Distributed;

/// <summary>
/// What an MPI launcher told this process through its environment: Open MPI's <c>mpirun</c> sets
/// <c>OMPI_COMM_WORLD_SIZE</c> / <c>_RANK</c> / <c>_LOCAL_RANK</c>; SLURM's <c>srun</c> sets <c>SLURM_NTASKS</c>,
/// <c>SLURM_PROCID</c>, <c>SLURM_LOCALID</c> (and <c>PMI_SIZE</c> / <c>PMIX_RANK</c> with a PMI plugin). A process started
/// without any of them is a single process and never loads MPI.
/// </summary>
/// <param name="Launcher">Which variables were found ("mpirun", "srun", "pmi").</param>
/// <param name="WorldSize">Number of processes the launcher started.</param>
/// <param name="Rank">This process's rank, when the launcher says (MPI's own answer is used once initialised).</param>
/// <param name="LocalRank">This process's index among the job's processes on this machine (its GPU).</param>
internal sealed record MpiLaunch(string Launcher, int WorldSize, int Rank, int LocalRank)
{
    /// <summary>Reads the launcher's variables from <paramref name="environment"/> (default: this process's); null when absent.</summary>
    public static MpiLaunch? Detect(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        int? Int(string name) => int.TryParse(environment(name), out var v) ? v : null;
        if (Int("OMPI_COMM_WORLD_SIZE") is { } ompi)
        {
            return new MpiLaunch("mpirun", ompi, Int("OMPI_COMM_WORLD_RANK") ?? 0, Int("OMPI_COMM_WORLD_LOCAL_RANK") ?? 0);
        }
        if (Int("SLURM_NTASKS") is { } tasks && environment("SLURM_STEP_ID") is not null && Int("SLURM_PROCID") is { } procId)
        {
            // Inside an srun step (sbatch alone sets SLURM_NTASKS for the batch script, which is one process).
            return new MpiLaunch("srun", tasks, procId, Int("SLURM_LOCALID") ?? 0);
        }
        if (Int("PMI_SIZE") is { } pmi)
        {
            return new MpiLaunch("pmi", pmi, Int("PMI_RANK") ?? Int("PMIX_RANK") ?? 0, Int("MPI_LOCALRANKID") ?? 0);
        }
        return null;
    }
}
