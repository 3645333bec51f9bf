using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>What <see cref="NftLoss.Compute"/> returns (scalar tensors).</summary>
/// <param name="Loss">The policy loss plus kl_coef times the KL term: what is backpropagated.</param>
/// <param name="PolicyLoss">mean(adv_clip_max (r L+ + (1 - r) L-) / beta).</param>
/// <param name="Kl">mean((v_theta - v_ref)^2), or null without a reference.</param>
internal sealed record NftLossTerms(Tensor Loss, Tensor PolicyLoss, Tensor? Kl);

/// <summary>
/// DiffusionNFT's loss, as NVlabs/DiffusionNFT <c>scripts/train_nft_sd3.py</c> (at 24af555) computes it for one micro-batch
/// at one time: the reward weight r = clip(clip(A, -M, M) / (2 M) + 1/2, 0, 1) (M = <c>train.adv_clip_max</c>), the
/// implicit positive and negative velocities v+ = b v_theta + (1 - b) v_old and v- = (1 + b) v_old - b v_theta, their
/// x0 predictions x_t - sigma v, each squared error divided by its own detached mean absolute error (float64, at least
/// 1e-5: the adaptive weighting), and (r L+ + (1 - r) L-) / b times M, averaged; plus kl_coef mean((v_theta - v_ref)^2).
/// </summary>
internal static class NftLoss
{
    /// <summary>The smallest adaptive weight (upstream's <c>clip(min=0.00001)</c>).</summary>
    public const double MinWeight = 1e-5;

    /// <summary>The reward weight r of clipped advantages: clip(A / (2 M) + 1/2, 0, 1) after clipping A to [-M, M].</summary>
    public static Tensor RewardWeight(Tensor advantages, double advClipMax)
    {
        using var scope = NewDisposeScope();
        var clipped = advantages.clamp(-advClipMax, advClipMax);
        return (clipped / advClipMax / 2.0 + 0.5).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The loss at noisy latents <paramref name="xt"/> = (1 - sigma) x0 + sigma noise of clean <paramref name="x0"/> with
    /// per-sample <paramref name="sigma"/> [B], the current velocity <paramref name="vTheta"/> (with gradient), the old
    /// policy's <paramref name="vOld"/> and the reference's <paramref name="vRef"/> (both detached here; null: no KL),
    /// per-sample <paramref name="advantages"/> [B], <paramref name="beta"/> (<c>nft.beta</c>),
    /// <paramref name="advClipMax"/> and <paramref name="klCoef"/> (<c>nft.kl_coef</c>).
    /// </summary>
    public static NftLossTerms Compute(Tensor xt, Tensor x0, Tensor sigma, Tensor vTheta, Tensor vOld, Tensor? vRef, Tensor advantages,
        double beta, double advClipMax, double klCoef)
    {
        using var scope = NewDisposeScope();
        var dims = Enumerable.Range(1, (int)x0.dim() - 1).Select(i => (long)i).ToArray();
        var s = sigma.to(xt.dtype).view([-1, .. Enumerable.Repeat(1L, dims.Length)]);
        var r = RewardWeight(advantages.to(ScalarType.Float64), advClipMax);
        var old = vOld.detach();
        var positive = beta * vTheta + (1 - beta) * old;
        var negative = (1 + beta) * old - beta * vTheta;
        var x0Double = x0.to(ScalarType.Float64);
        Tensor Weighted(Tensor velocity)
        {
            var x0Prediction = xt - s * velocity;
            Tensor weight;
            using (no_grad())
            {
                weight = (x0Prediction.detach().to(ScalarType.Float64) - x0Double).abs().mean(dims, keepdim: true).clamp_min(MinWeight);
            }
            // float32 / float64 is float64, as in PyTorch: the adaptive weighting is taken in double.
            return ((x0Prediction - x0).square() / weight).mean(dims);
        }
        var perSample = r * Weighted(positive) / beta + (1.0 - r) * Weighted(negative) / beta;
        var policyLoss = (perSample * advClipMax).mean();
        Tensor? kl = null;
        var loss = policyLoss;
        if (vRef is not null)
        {
            kl = (vTheta - vRef.detach().to(vTheta.dtype)).square().mean(dims).mean();
            loss = policyLoss + klCoef * kl;
        }
        policyLoss.MoveToOuterDisposeScope();
        if (kl is null) return new NftLossTerms(policyLoss, policyLoss, null);
        return new NftLossTerms(loss.MoveToOuterDisposeScope(), policyLoss, kl.MoveToOuterDisposeScope());
    }
}
