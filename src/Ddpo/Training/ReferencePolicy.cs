using Ddpo.Config;
using Ddpo.Models.Lora;
using Ddpo.Policies;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The base model of the KL penalty (<c>train.kl_coef</c>): the policy before any update. With LoRA it is the same
/// policy with its adapters switched off for the call (<see cref="LoraAdapters.Disable"/>: no second copy in memory);
/// with full fine-tuning, the policy with a frozen copy of the initial denoiser (<see cref="IDiffusionPolicy.FrozenCopy"/>). It runs without gradients, so it keeps no activations
/// for the backward pass: the penalty costs one more forward per trained step and a mean tensor, not a second graph.
/// </summary>
internal sealed class ReferencePolicy : IDisposable
{
    private readonly IDiffusionPolicy _policy;
    private readonly LoraAdapters? _lora;
    private readonly bool _ownsPolicy;

    private ReferencePolicy(IDiffusionPolicy policy, LoraAdapters? lora, bool ownsPolicy)
    {
        _policy = policy;
        _lora = lora;
        _ownsPolicy = ownsPolicy;
    }

    /// <summary>
    /// The reference of a run, or null when <c>train.kl_coef</c> is 0 (with <c>algorithm = "nft"</c>: <c>nft.kl_coef</c>). Call it before any update (and before a
    /// checkpoint is restored): a full fine-tuning run copies the weights as they are now.
    /// </summary>
    public static ReferencePolicy? Create(DdpoConfig config, IDiffusionPolicy policy, TrainableWeights weights) =>
        config.Train.KlCoef > 0 || (config.Algorithm == TrainingAlgorithm.Nft && config.Nft.KlCoef > 0)
            ? (weights.Lora is { } lora ? WithAdaptersOff(policy, lora) : FrozenCopy(policy))
            : null;

    /// <summary>The base model as <paramref name="policy"/> with <paramref name="lora"/> switched off.</summary>
    public static ReferencePolicy WithAdaptersOff(IDiffusionPolicy policy, LoraAdapters lora) => new(policy, lora, ownsPolicy: false);

    /// <summary>The base model as <paramref name="policy"/> with a frozen copy of its denoiser as it is now.</summary>
    public static ReferencePolicy FrozenCopy(IDiffusionPolicy policy) => new(policy.FrozenCopy(), null, ownsPolicy: true);

    /// <summary>
    /// The mean of the base model's transitions <paramref name="batch"/> (the same guidance, eta and final step as the
    /// policy's), without gradients.
    /// </summary>
    public Tensor Mean(TransitionBatch batch, SamplingOptions options)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var off = _lora?.Disable();
        return _policy.Evaluate(batch, options).Mean.MoveToOuterDisposeScope();
    }

    /// <summary>The base model's <see cref="IDiffusionPolicy.Predict"/> (DiffusionNFT's reference velocity), without gradients.</summary>
    public Tensor Predict(Tensor latents, Tensor times, Conditioning condition, Conditioning? unconditional, double guidanceScale)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var off = _lora?.Disable();
        return _policy.Predict(latents, times, condition, unconditional, guidanceScale).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// KL(policy || base) of two Gaussian transitions with the same std, per sample [B]:
    /// ||mean_policy - mean_base||^2 / (2 std^2), averaged over the non-batch dimensions as the log-probabilities are
    /// (Flow-GRPO's kl_loss). Differentiable with respect to <paramref name="policyMean"/>.
    /// </summary>
    public static Tensor Kl(Tensor policyMean, Tensor baseMean, Tensor std)
    {
        using var scope = NewDisposeScope();
        var perElement = (policyMean - baseMean.to(policyMean.dtype)).square() / (2 * std.to(policyMean.dtype).square());
        var dims = Enumerable.Range(1, (int)perElement.dim() - 1).Select(i => (long)i).ToArray();
        return (dims.Length == 0 ? perElement : perElement.mean(dims)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsPolicy) _policy.Dispose();
    }
}
