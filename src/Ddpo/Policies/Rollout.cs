using static TorchSharp.torch;

namespace Ddpo.Policies;

/// <summary>
/// A sampled batch as MDP trajectories. All tensors are on the policy's device; the owner disposes them.
/// </summary>
/// <param name="Final">The final latents x_0 [B, C, H, W].</param>
/// <param name="Times">The schedule's times, noisiest first [T] (DDIM: int64 timesteps).</param>
/// <param name="Latents">x_T .. x_0 [B, T+1, C, H, W], or null unless the trajectory was recorded.</param>
/// <param name="LogProbs">log p(x_{t-1} | x_t) of each step [B, T] (float32), or null unless recorded; undefined (NaN)
/// for a deterministic step.</param>
internal sealed record Rollout(Tensor Final, Tensor Times, Tensor? Latents, Tensor? LogProbs) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Final.Dispose();
        Times.Dispose();
        Latents?.Dispose();
        LogProbs?.Dispose();
    }
}
