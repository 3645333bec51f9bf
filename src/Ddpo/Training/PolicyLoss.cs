using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The policy-gradient losses of DDPO for one denoising step of a batch (inputs [B]); all are
/// means over the batch and differentiable with respect to <c>logProb</c>.
/// </summary>
internal static class PolicyLoss
{
    /// <summary>
    /// DDPO-IS (ddpo-pytorch's PPO step): advantages clamped to ±<paramref name="advClipMax"/>,
    /// ratio = exp(logp - old), loss = mean(max(-A·ratio, -A·clamp(ratio, 1-ε, 1+ε))).
    /// Also returns approx_kl = 0.5·mean((logp - old)²) and clipfrac = mean(|ratio - 1| &gt; ε) (both detached).
    /// </summary>
    public static (Tensor Loss, Tensor ApproxKl, Tensor ClipFrac) DdpoIs(
        Tensor logProb, Tensor oldLogProb, Tensor advantages, double clipRange, double advClipMax)
    {
        CheckShapes(logProb, oldLogProb, nameof(oldLogProb));
        CheckShapes(logProb, advantages, nameof(advantages));
        using var scope = NewDisposeScope();
        var adv = advantages.clamp(-advClipMax, advClipMax);
        var diff = logProb - oldLogProb;
        var ratio = diff.exp();
        var unclipped = -adv * ratio;
        var clipped = -adv * ratio.clamp(1.0 - clipRange, 1.0 + clipRange);
        var loss = maximum(unclipped, clipped).mean();
        Tensor approxKl, clipFrac;
        using (no_grad())
        {
            approxKl = 0.5 * diff.detach().square().mean();
            clipFrac = ((ratio.detach() - 1.0).abs() > clipRange).to(logProb.dtype).mean();
        }
        return (loss.MoveToOuterDisposeScope(), approxKl.MoveToOuterDisposeScope(), clipFrac.MoveToOuterDisposeScope());
    }

    /// <summary>DDPO-SF (score function / REINFORCE): -mean(clamp(A, ±<paramref name="advClipMax"/>)·logp).</summary>
    public static Tensor DdpoSf(Tensor logProb, Tensor advantages, double advClipMax)
    {
        CheckShapes(logProb, advantages, nameof(advantages));
        using var scope = NewDisposeScope();
        return (-(advantages.clamp(-advClipMax, advClipMax) * logProb).mean()).MoveToOuterDisposeScope();
    }

    private static void CheckShapes(Tensor logProb, Tensor other, string name)
    {
        if (!logProb.shape.SequenceEqual(other.shape))
        {
            throw new ArgumentException(
                $"{name}: shape [{string.Join(", ", other.shape)}] does not match logProb [{string.Join(", ", logProb.shape)}]");
        }
    }
}
