using System.Diagnostics;
using System.Text;

namespace Ddpo.Distributed;

/// <summary>
/// The processes an MPI launcher started (<c>mpirun -np N ddpo ...</c>, <c>srun ddpo ...</c>), connected by Open MPI's
/// <c>MPI_COMM_WORLD</c>. MPI is initialised with <c>MPI_THREAD_MULTIPLE</c> so that the collective watchdog (a thread
/// that calls <c>MPI_Abort</c> when a collective has waited longer than <see cref="CollectiveTimeout"/>) may act
/// while the main thread is blocked. Every failure of an MPI call is reported with the rank and the call.
/// </summary>
internal sealed unsafe class MpiProcessGroup : IProcessGroup
{
    /// <summary>The environment variable that sets <see cref="CollectiveTimeout"/> in seconds.</summary>
    public const string TimeoutVariable = "DDPO_COLLECTIVE_TIMEOUT_S";

    /// <summary>The environment variable that names the Open MPI library to load instead of the system's <c>libmpi.so.40</c>.</summary>
    public const string LibraryVariable = "DDPO_LIBMPI";

    /// <summary>The default collective timeout: long enough for a slow rank's sampling phase, short enough to end a hung job.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(30);

    private readonly LibMpi _mpi;
    private readonly Thread _watchdog;
    private readonly object _gate = new();
    private string? _collective;
    private long _collectiveStarted;
    private bool _disposed;

    /// <inheritdoc />
    public int Rank { get; }
    /// <inheritdoc />
    public int Size { get; }
    /// <inheritdoc />
    public int LocalRank { get; }
    /// <inheritdoc />
    public string Host { get; }
    /// <inheritdoc />
    public string Description { get; }

    /// <summary>How long one collective may wait for the other ranks before the job is aborted.</summary>
    public TimeSpan CollectiveTimeout { get; }

    /// <summary>Initialises MPI for a process started by <paramref name="launch"/>'s launcher.</summary>
    public MpiProcessGroup(MpiLaunch launch, TimeSpan? collectiveTimeout = null)
    {
        // DDPO_LIBMPI names another Open MPI 4 library (e.g. /opt/openmpi/lib/libmpi.so.40) than the system's.
        _mpi = LibMpi.Load(Environment.GetEnvironmentVariable(LibraryVariable) is { Length: > 0 } path ? path : LibMpi.LibraryName);
        int initialized;
        Check(_mpi.Initialized(&initialized), "MPI_Initialized");
        if (initialized == 0)
        {
            int provided;
            Check(_mpi.InitThread(null, null, LibMpi.ThreadMultiple, &provided), "MPI_Init_thread");
            if (provided < LibMpi.ThreadMultiple)
            {
                Console.Error.WriteLine($"warning: Open MPI provides thread level {provided}, not MPI_THREAD_MULTIPLE; the collective watchdog may not be able to abort a hung job");
            }
        }
        int rank, size;
        Check(_mpi.CommRank(_mpi.CommWorld, &rank), "MPI_Comm_rank");
        Check(_mpi.CommSize(_mpi.CommWorld, &size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
        LocalRank = launch.LocalRank;
        var name = new byte[LibMpi.MaxProcessorName + 1];
        int length;
        fixed (byte* p = name) Check(_mpi.GetProcessorName(p, &length), "MPI_Get_processor_name");
        Host = Encoding.UTF8.GetString(name, 0, Math.Clamp(length, 0, LibMpi.MaxProcessorName));
        Description = $"mpi ({launch.Launcher})";
        CollectiveTimeout = collectiveTimeout ?? TimeoutFromEnvironment();
        _watchdog = new Thread(Watch) { IsBackground = true, Name = "ddpo collective watchdog" };
        _watchdog.Start();
    }

    /// <summary>The timeout <see cref="TimeoutVariable"/> sets, or <see cref="DefaultTimeout"/>.</summary>
    public static TimeSpan TimeoutFromEnvironment()
    {
        var text = Environment.GetEnvironmentVariable(TimeoutVariable);
        if (string.IsNullOrEmpty(text)) return DefaultTimeout;
        return double.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var s) && s > 0
            ? TimeSpan.FromSeconds(s)
            : throw new ArgumentException($"{TimeoutVariable}='{text}': expected a positive number of seconds");
    }

    /// <inheritdoc />
    public void AllReduceSum(Span<double> values)
    {
        fixed (double* p = values)
        {
            Enter("MPI_Allreduce(sum)");
            int rc;
            try { rc = _mpi.Allreduce((void*)LibMpi.InPlace, p, values.Length, _mpi.Double, _mpi.OpSum, _mpi.CommWorld); }
            finally { Leave(); }
            Check(rc, "MPI_Allreduce(sum)");
        }
    }

    /// <inheritdoc />
    public void AllReduceSum(Span<float> values)
    {
        fixed (float* p = values)
        {
            Enter("MPI_Allreduce(sum)");
            int rc;
            try { rc = _mpi.Allreduce((void*)LibMpi.InPlace, p, values.Length, _mpi.Float, _mpi.OpSum, _mpi.CommWorld); }
            finally { Leave(); }
            Check(rc, "MPI_Allreduce(sum)");
        }
    }

    /// <inheritdoc />
    public void AllReduceMax(Span<double> values)
    {
        fixed (double* p = values)
        {
            Enter("MPI_Allreduce(max)");
            int rc;
            try { rc = _mpi.Allreduce((void*)LibMpi.InPlace, p, values.Length, _mpi.Double, _mpi.OpMax, _mpi.CommWorld); }
            finally { Leave(); }
            Check(rc, "MPI_Allreduce(max)");
        }
    }

    /// <inheritdoc />
    public long[] AllGather(long value)
    {
        var all = new long[Size];
        fixed (long* p = all)
        {
            Enter("MPI_Allgather");
            int rc;
            try { rc = _mpi.Allgather(&value, 1, _mpi.Int64, p, 1, _mpi.Int64, _mpi.CommWorld); }
            finally { Leave(); }
            Check(rc, "MPI_Allgather");
        }
        return all;
    }

    /// <inheritdoc />
    public byte[][] AllGatherBytes(ReadOnlySpan<byte> bytes)
    {
        var lengths = AllGather(bytes.Length);
        long total = lengths.Sum();
        if (total > int.MaxValue)
        {
            throw new InvalidOperationException($"rank {Rank}: an all-gather of {total} bytes exceeds MPI's 2 GiB count limit");
        }
        var counts = lengths.Select(l => (int)l).ToArray();
        var displs = new int[Size];
        for (int i = 1; i < Size; i++) displs[i] = displs[i - 1] + counts[i - 1];
        var all = new byte[total];
        fixed (byte* send = bytes)
        fixed (byte* recv = all)
        fixed (int* c = counts)
        fixed (int* d = displs)
        {
            {
                Enter("MPI_Allgatherv");
                int rc;
                try { rc = _mpi.Allgatherv(send, bytes.Length, _mpi.Byte, recv, c, d, _mpi.Byte, _mpi.CommWorld); }
                finally { Leave(); }
                Check(rc, "MPI_Allgatherv");
            }
        }
        return Enumerable.Range(0, Size).Select(i => all.AsSpan(displs[i], counts[i]).ToArray()).ToArray();
    }

    /// <inheritdoc />
    public void Broadcast(Span<byte> values, int root)
    {
        fixed (byte* p = values)
        {
            Enter("MPI_Bcast");
            int rc;
            try { rc = _mpi.Bcast(p, values.Length, _mpi.Byte, root, _mpi.CommWorld); }
            finally { Leave(); }
            Check(rc, "MPI_Bcast");
        }
    }

    /// <inheritdoc />
    public void Abort(string message, int exitCode)
    {
        Console.Out.Flush();
        Console.Error.WriteLine(message);
        Console.Error.Flush();
        _mpi.Abort(_mpi.CommWorld, exitCode == 0 ? 1 : exitCode);
        // MPI_Abort does not return when it works; if it did, make sure this process ends.
        Environment.Exit(exitCode == 0 ? 1 : exitCode);
    }

    /// <summary>Marks the start of a collective for the watchdog.</summary>
    private void Enter(string name)
    {
        lock (_gate)
        {
            _collective = name;
            _collectiveStarted = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>Marks the end of the collective.</summary>
    private void Leave()
    {
        lock (_gate) _collective = null;
    }

    private void Check(int rc, string call)
    {
        if (rc != 0)
        {
            throw new InvalidOperationException($"rank {(Size > 0 ? Rank.ToString() : "?")}: {call} failed with MPI error code {rc}");
        }
    }

    private void Watch()
    {
        var poll = TimeSpan.FromMilliseconds(Math.Clamp(CollectiveTimeout.TotalMilliseconds / 10, 50, 1000));
        while (true)
        {
            Thread.Sleep(poll);
            string? stuck = null;
            TimeSpan waited = default;
            lock (_gate)
            {
                if (_disposed) return;
                if (_collective is not null)
                {
                    waited = Stopwatch.GetElapsedTime(_collectiveStarted);
                    if (waited > CollectiveTimeout) stuck = _collective;
                }
            }
            if (stuck is not null)
            {
                Abort($"error: rank {Rank} ({Host}): {stuck} waited {waited.TotalSeconds:F0} s for the other ranks " +
                    $"(more than {TimeoutVariable} = {CollectiveTimeout.TotalSeconds:F0} s): another rank is stuck or gone; aborting the job",
                    exitCode: 4);
                return;
            }
        }
    }

    /// <summary>Stops the watchdog and calls <c>MPI_Finalize</c> (every rank must reach it).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        int finalized;
        if (_mpi.Finalized(&finalized) == 0 && finalized == 0) _mpi.Finalize();
    }
}
