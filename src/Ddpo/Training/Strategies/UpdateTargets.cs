namespace Ddpo.Training;

/// <summary>What an epoch's update trains on.</summary>
/// <param name="Subset">The samples kept, when not all of them (sparse RWR; owned by this record), else null.</param>
/// <param name="Weights">Each trained sample's advantage or loss weight, in the samples' order.</param>
/// <param name="Metrics">Fields the choice adds to the epoch's metrics line (GRPO: <c>groups</c>, <c>zero_std_groups</c>).</param>
internal sealed record UpdateTargets(EpochSamples? Subset, float[] Weights, IReadOnlyDictionary<string, object?> Metrics) : IDisposable
{
    /// <summary>No extra metrics.</summary>
    public static readonly IReadOnlyDictionary<string, object?> NoMetrics = new Dictionary<string, object?>();

    /// <inheritdoc />
    public void Dispose() => Subset?.Dispose();
}
