namespace Ddpo.Distributed;

/// <summary>A run of one process: every collective leaves its data as it is. MPI is never loaded.</summary>
internal sealed class SingleProcessGroup : IProcessGroup
{
    /// <summary>The one instance.</summary>
    public static readonly SingleProcessGroup Instance = new();

    private SingleProcessGroup() { }

    /// <inheritdoc />
    public int Rank => 0;
    /// <inheritdoc />
    public int Size => 1;
    /// <inheritdoc />
    public int LocalRank => 0;
    /// <inheritdoc />
    public string Host => Environment.MachineName;
    /// <inheritdoc />
    public string Description => "single process";
    /// <inheritdoc />
    public void AllReduceSum(Span<double> values) { }
    /// <inheritdoc />
    public void AllReduceSum(Span<float> values) { }
    /// <inheritdoc />
    public void AllReduceMax(Span<double> values) { }
    /// <inheritdoc />
    public long[] AllGather(long value) => [value];
    /// <inheritdoc />
    public byte[][] AllGatherBytes(ReadOnlySpan<byte> bytes) => [bytes.ToArray()];
    /// <inheritdoc />
    public void Broadcast(Span<byte> values, int root) { }

    /// <inheritdoc />
    public void Abort(string message, int exitCode)
    {
        Console.Error.WriteLine(message);
        Environment.Exit(exitCode);
    }

    /// <inheritdoc />
    public void Dispose() { }
}
