using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// One sampling batch seen as MDP trajectories: what DDPO needs to re-evaluate each action's
/// log-probability under the current policy. All tensors live on the sampling device; the owner disposes them.
/// </summary>
/// <param name="Prompts">The prompt of each sample.</param>
/// <param name="PromptEmbeds">Text-encoder states of the prompts [B, L, D].</param>
/// <param name="NegativeEmbeds">Text-encoder states of the negative / empty prompts [B, L, D], or null without guidance.</param>
/// <param name="Timesteps">The DDIM timesteps, descending [T].</param>
/// <param name="Latents">x_T .. x_0: [B, T+1, C, H, W].</param>
/// <param name="LogProbs">log p(x_{t-1} | x_t) of each step under the sampling policy [B, T] (float32); undefined (NaN)
/// for a deterministic step (diffusers' last step with <c>set_alpha_to_one</c>, see <see cref="Schedulers.DdimFinalStep"/>).</param>
public sealed record Trajectory(
    IReadOnlyList<string> Prompts,
    Tensor PromptEmbeds,
    Tensor? NegativeEmbeds,
    long[] Timesteps,
    Tensor Latents,
    Tensor LogProbs) : IDisposable
{
    /// <summary>Number of samples.</summary>
    public int Count => Prompts.Count;

    /// <summary>Number of denoising steps.</summary>
    public int Steps => Timesteps.Length;

    /// <inheritdoc />
    public void Dispose()
    {
        PromptEmbeds.Dispose();
        NegativeEmbeds?.Dispose();
        Latents.Dispose();
        LogProbs.Dispose();
    }
}
