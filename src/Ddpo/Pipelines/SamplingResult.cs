using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>Images made by the pipeline, and the trajectory when it was recorded.</summary>
/// <param name="Images">[B, 3, H, W] float32 in [0, 1], on the CPU.</param>
/// <param name="Trajectory">The recorded trajectory, or null.</param>
public sealed record SamplingResult(Tensor Images, Trajectory? Trajectory) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Images.Dispose();
        Trajectory?.Dispose();
    }
}
