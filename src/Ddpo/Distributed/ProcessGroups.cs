namespace Ddpo.Distributed;

/// <summary>
/// Creates this process's <see cref="IProcessGroup"/>: MPI when an MPI launcher started it (<see cref="MpiLaunch.Detect"/>),
/// otherwise the single process (MPI is then never loaded). The group is kept in <see cref="Current"/> so that a
/// failure anywhere can end the whole job (<see cref="AbortOnFailure"/>).
/// </summary>
public static class ProcessGroups
{
    /// <summary>The group of this process, once <see cref="FromEnvironment"/> has made it (the single process before).</summary>
    public static IProcessGroup Current { get; private set; } = SingleProcessGroup.Instance;

    /// <summary>
    /// The group the launcher's environment describes. A launcher that started only one process gives the single
    /// process (no MPI needed). Called once per process.
    /// </summary>
    public static IProcessGroup FromEnvironment()
    {
        if (Current is MpiProcessGroup) return Current;
        var launch = MpiLaunch.Detect();
        Current = launch is null || launch.WorldSize <= 1 ? SingleProcessGroup.Instance : new MpiProcessGroup(launch);
        return Current;
    }

    /// <summary>
    /// When this process is one of several, writes "rank R (host): MESSAGE" and ends the whole job with
    /// <c>MPI_Abort</c>, so that no other rank waits forever; a single process just returns.
    /// </summary>
    public static void AbortOnFailure(string message, int exitCode)
    {
        if (Current.Size <= 1) return;
        Current.Abort($"rank {Current.Rank} of {Current.Size} ({Current.Host}) failed: {message}", exitCode);
    }

    /// <summary>
    /// The device of this rank: a CUDA device without an index becomes <c>cuda:LOCAL_RANK</c> (modulo the visible
    /// devices) when there are several processes, so that the processes on one machine use one GPU each.
    /// </summary>
    public static TorchSharp.torch.Device DeviceForRank(TorchSharp.torch.Device device, IProcessGroup group)
    {
        if (group.Size <= 1 || device.type != TorchSharp.DeviceType.CUDA || device.index >= 0) return device;
        int visible = Math.Max(1, TorchSharp.torch.cuda.device_count());
        return new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, group.LocalRank % visible);
    }

    /// <summary>Ends MPI at a normal exit (<c>MPI_Finalize</c>, reached by every rank); nothing for a single process.</summary>
    public static void Shutdown()
    {
        Current.Dispose();
        Current = SingleProcessGroup.Instance;
    }
}
