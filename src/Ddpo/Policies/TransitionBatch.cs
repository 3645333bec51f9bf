using static TorchSharp.torch;

namespace Ddpo.Policies;

/// <summary>Recorded transitions to re-evaluate: one step per row. The caller owns the tensors.</summary>
/// <param name="Latents">x_t [B, C, H, W].</param>
/// <param name="Next">The recorded x_{t-1} [B, C, H, W].</param>
/// <param name="Times">The step's time per row [B] (values of the rollout's <see cref="Rollout.Times"/>).</param>
/// <param name="Condition">The rows' conditioning.</param>
/// <param name="Unconditional">The unconditional conditioning when the step is guided with one, else null.</param>
internal sealed record TransitionBatch(Tensor Latents, Tensor Next, Tensor Times, Conditioning Condition, Conditioning? Unconditional);
