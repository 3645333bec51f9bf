namespace Ddpo.Distributed;

/// <summary>
/// The processes of one data-parallel run and the collectives training needs. Every collective must be called
/// by every rank in the same order (MPI semantics); buffers are host memory. <see cref="SingleProcessGroup"/> is
/// the one-process run (every collective is the identity); <see cref="MpiProcessGroup"/> runs them through Open MPI.
/// </summary>
public interface IProcessGroup : IDisposable
{
    /// <summary>This process's rank, 0 .. <see cref="Size"/> - 1.</summary>
    int Rank { get; }

    /// <summary>Number of processes.</summary>
    int Size { get; }

    /// <summary>This process's index among the run's processes on its machine (which GPU it uses).</summary>
    int LocalRank { get; }

    /// <summary>The machine's name (MPI_Get_processor_name).</summary>
    string Host { get; }

    /// <summary>"mpi (mpirun)", "single process".</summary>
    string Description { get; }

    /// <summary>Element-wise sum over ranks, in place.</summary>
    void AllReduceSum(Span<double> values);

    /// <summary>Element-wise sum over ranks, in place.</summary>
    void AllReduceSum(Span<float> values);

    /// <summary>Element-wise maximum over ranks, in place.</summary>
    void AllReduceMax(Span<double> values);

    /// <summary>Every rank's <paramref name="value"/>, by rank.</summary>
    long[] AllGather(long value);

    /// <summary>Every rank's bytes (any length), by rank.</summary>
    byte[][] AllGatherBytes(ReadOnlySpan<byte> bytes);

    /// <summary>Rank <paramref name="root"/>'s <paramref name="values"/> on every rank, in place.</summary>
    void Broadcast(Span<byte> values, int root);

    /// <summary>
    /// Ends the whole job now (every rank), after writing <paramref name="message"/> to stderr: a rank that failed
    /// calls this so that no other rank waits forever in a collective. Does not return.
    /// </summary>
    void Abort(string message, int exitCode);
}
