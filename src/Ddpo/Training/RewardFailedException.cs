using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The reward could not be computed for an epoch's samples (server down, timeout, bad answer after
/// retries). Carries the sampled trajectories and images so the trainer can keep them and score them
/// again on <c>--resume</c>; the owner disposes <see cref="Samples"/> and <see cref="Images"/>.
/// </summary>
internal sealed class RewardFailedException(int epoch, EpochSamples samples, Tensor images, Exception inner)
    : Exception($"epoch {epoch}: the reward failed: {inner.Message}", inner)
{
    /// <summary>The epoch whose rewards failed.</summary>
    public int Epoch { get; } = epoch;

    /// <summary>The epoch's trajectories (rewards NaN).</summary>
    public EpochSamples Samples { get; } = samples;

    /// <summary>The epoch's images [N, 3, H, W] in [0, 1].</summary>
    public Tensor Images { get; } = images;
}
