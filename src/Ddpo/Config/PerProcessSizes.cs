using Ddpo.Base;

namespace Ddpo.Config;

/// <summary>
/// Shares a config's stated totals among the run's processes: <c>sample.samples_per_epoch</c> decides
/// <c>sample.num_batches_per_epoch</c> and <c>train.total_batch_size</c> decides
/// <c>train.gradient_accumulation_steps</c>, keeping the per-process batch sizes (<c>sample.batch_size</c>,
/// <c>train.batch_size</c>, which are bounded by a device's memory) as set. This is ddpo-pytorch's advice for
/// fewer GPUs ("multiply num_batches_per_epoch and gradient_accumulation_steps accordingly") done for the user,
/// so a preset gives the paper's sample counts on any number of devices. A total that does not split evenly
/// is an error saying which batch sizes would.
/// </summary>
internal static class PerProcessSizes
{
    /// <summary>Derives the per-process counts of <paramref name="config"/> for <paramref name="worldSize"/> processes.</summary>
    public static void Derive(DdpoConfig config, int worldSize)
    {
        if (worldSize < 1)
        {
            throw new ConfigException($"world size (number of processes) must be >= 1, got {worldSize}");
        }
        config.WorldSize = worldSize;
        if (config.Sample.SamplesPerEpoch > 0)
        {
            config.Sample.NumBatchesPerEpoch = Share(config, SampleCounts.SamplesPerEpochKey, config.Sample.SamplesPerEpoch,
                "sample.batch_size", config.Sample.BatchSize, SampleCounts.NumBatchesPerEpochKey);
        }
        if (config.Train.TotalBatchSize > 0)
        {
            config.Train.GradientAccumulationSteps = Share(config, SampleCounts.TotalBatchSizeKey, config.Train.TotalBatchSize,
                "train.batch_size", config.Train.BatchSize, SampleCounts.GradientAccumulationStepsKey);
        }
    }

    /// <summary>
    /// A note for the resolved TOML when <paramref name="key"/> was derived from a total, e.g.
    /// "samples_per_epoch 256 / (batch_size 8 x 1 process)"; null when the key is used as set.
    /// </summary>
    public static string? DerivedNote(DdpoConfig config, string key) => key switch
    {
        SampleCounts.NumBatchesPerEpochKey when config.Sample.SamplesPerEpoch > 0 =>
            $"samples_per_epoch {config.Sample.SamplesPerEpoch} / (batch_size {config.Sample.BatchSize} x {SampleCounts.Processes(config.WorldSize)})",
        SampleCounts.GradientAccumulationStepsKey when config.Train.TotalBatchSize > 0 =>
            $"total_batch_size {config.Train.TotalBatchSize} / (batch_size {config.Train.BatchSize} x {SampleCounts.Processes(config.WorldSize)})",
        _ => null,
    };

    private static int Share(DdpoConfig config, string totalKey, int total, string batchKey, int batch, string countKey)
    {
        int n = config.WorldSize;
        if (total % n != 0)
        {
            throw config.Problem(totalKey, $"{total} cannot be shared evenly by {SampleCounts.Processes(n)} (use a multiple of {n})");
        }
        int perProcess = total / n;
        if (perProcess % batch != 0)
        {
            var divisors = Enumerable.Range(1, Math.Min(batch, perProcess)).Reverse().Where(d => perProcess % d == 0).Take(4);
            var where = n == 1 ? "" : $" over {SampleCounts.Processes(n)} is {perProcess} per process, which";
            throw config.Problem(totalKey,
                $"{total}{where} is not a multiple of {batchKey} = {batch}; set {batchKey} to a divisor of {perProcess} " +
                $"(e.g. {string.Join(", ", divisors)}) or {totalKey} to a multiple of {(long)batch * n}");
        }
        config.SetOrigin(countKey, $"derived from {totalKey}");
        return perProcess / batch;
    }
}
