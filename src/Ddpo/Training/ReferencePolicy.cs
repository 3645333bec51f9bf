using Ddpo.Config;
using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using Ddpo.Schedulers;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The base model of the KL penalty (<c>train.kl_coef</c>): the policy before any update. With LoRA it is the same
/// UNet with its adapters switched off for the call (<see cref="LoraAdapters.Disable"/>: no second copy in memory);
/// with full fine-tuning, a frozen copy of the initial weights. It runs without gradients, so it keeps no activations
/// for the backward pass: the penalty costs one more forward per trained step and a mean tensor, not a second graph.
/// </summary>
internal sealed class ReferencePolicy : IDisposable
{
    private readonly UNet2DConditionModel _unet;
    private readonly DdimScheduler _scheduler;
    private readonly LoraAdapters? _lora;
    private readonly bool _ownsUnet;

    private ReferencePolicy(UNet2DConditionModel unet, DdimScheduler scheduler, LoraAdapters? lora, bool ownsUnet)
    {
        _unet = unet;
        _scheduler = scheduler;
        _lora = lora;
        _ownsUnet = ownsUnet;
    }

    /// <summary>
    /// The reference of a run, or null when <c>train.kl_coef</c> is 0. Call it before any update (and before a
    /// checkpoint is restored): a full fine-tuning run copies the weights as they are now.
    /// </summary>
    public static ReferencePolicy? Create(DdpoConfig config, TextToImagePipeline pipeline, TrainableWeights weights) =>
        config.Train.KlCoef > 0
            ? (weights.Lora is { } lora ? WithAdaptersOff(lora, pipeline.Scheduler) : FrozenCopy(pipeline.Unet, pipeline.Scheduler))
            : null;

    /// <summary>The base model as the adapted UNet with <paramref name="lora"/> switched off; <paramref name="scheduler"/> is the policy's.</summary>
    public static ReferencePolicy WithAdaptersOff(LoraAdapters lora, DdimScheduler scheduler) => new(lora.Unet, scheduler, lora, ownsUnet: false);

    /// <summary>The base model as a frozen copy of <paramref name="unet"/> as it is now; <paramref name="scheduler"/> is the policy's.</summary>
    public static ReferencePolicy FrozenCopy(UNet2DConditionModel unet, DdimScheduler scheduler)
    {
        var copy = new UNet2DConditionModel(unet.Config, unet.DType, unet.Device);
        using (no_grad())
        {
            var source = unet.state_dict();
            foreach (var (name, tensor) in copy.state_dict())
            {
                tensor.copy_(source[name]);
            }
        }
        foreach (var p in copy.parameters()) p.requires_grad = false;
        copy.eval();
        return new ReferencePolicy(copy, scheduler, null, ownsUnet: true);
    }

    /// <summary>
    /// The mean of the base model's transition from <paramref name="latents"/> at <paramref name="timesteps"/> (the same
    /// guidance, eta and final step as the policy's), without gradients.
    /// </summary>
    public Tensor Mean(Tensor latents, Tensor timesteps, Tensor nextLatents, Tensor promptEmbeds, Tensor? negativeEmbeds,
        double guidanceScale, double eta, DdimFinalStep finalStep)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var off = _lora?.Disable();
        var eps = GuidedNoisePredictor.Predict(_unet, latents, timesteps, promptEmbeds, negativeEmbeds, guidanceScale, _unet.DType);
        var step = _scheduler.Step(eps, timesteps, latents, eta, prevSample: nextLatents, finalStep: finalStep);
        return step.Mean.MoveToOuterDisposeScope();
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
        if (_ownsUnet) _unet.Dispose();
    }
}
