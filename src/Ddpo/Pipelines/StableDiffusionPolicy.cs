using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Policies;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// Stable Diffusion 1.x/2.x (and the built-in model) as a policy: a UNet predicting noise from CLIP text states,
/// classifier-free guidance as one batch [unconditional; conditional], DDIM with eta as the stochastic sampler
/// (<see cref="DdimSampler"/>), the VAE (or nothing, in pixel space) to decode. Uses the components of a
/// <see cref="TextToImagePipeline"/>, which owns them; a policy of a UNet and a scheduler alone (tests, the KL's
/// frozen copy) re-evaluates transitions but has no encoders to sample with.
/// </summary>
internal sealed class StableDiffusionPolicy : IDiffusionPolicy
{
    /// <summary>The name of the one conditioning part: the text encoder's last hidden states [B, L, D].</summary>
    public const string PromptEmbeds = "prompt_embeds";

    private readonly TextToImagePipeline? _pipeline;
    private readonly UNet2DConditionModel _unet;
    private readonly DdimScheduler _scheduler;
    private readonly bool _ownsUnet;

    /// <summary>The policy of <paramref name="pipeline"/>'s components.</summary>
    public StableDiffusionPolicy(TextToImagePipeline pipeline)
        : this(pipeline.Unet, pipeline.Scheduler, pipeline, ownsUnet: false)
    {
    }

    /// <summary>
    /// The policy of <paramref name="unet"/> and <paramref name="scheduler"/> (owning the UNet when
    /// <paramref name="ownsUnet"/>), with <paramref name="pipeline"/>'s encoders and decoder when given.
    /// </summary>
    public StableDiffusionPolicy(UNet2DConditionModel unet, DdimScheduler scheduler, TextToImagePipeline? pipeline = null, bool ownsUnet = false)
    {
        _pipeline = pipeline;
        _unet = unet;
        _scheduler = scheduler;
        _ownsUnet = ownsUnet;
    }

    private TextToImagePipeline Pipeline => _pipeline
        ?? throw new InvalidOperationException("this Stable Diffusion policy has a UNet and a scheduler only: no text encoder, VAE or image size");

    /// <inheritdoc />
    public string Family => "Stable Diffusion (DDIM)";

    /// <inheritdoc />
    public Device Device => _unet.Device;

    /// <inheritdoc />
    public ScalarType DType => _unet.DType;

    /// <inheritdoc />
    public nn.Module Denoiser => _unet;

    /// <inheritdoc />
    public string DenoiserName => "unet";

    /// <inheritdoc />
    public IReadOnlyList<string> LoraTargets => LoraAdapters.DefaultTargets;

    /// <inheritdoc />
    public int DefaultImageSize => Pipeline.DefaultImageSize;

    /// <inheritdoc />
    public Conditioning Encode(IReadOnlyList<string> prompts) => Condition(Pipeline.EncodePrompts(prompts));

    /// <summary>The conditioning of text-encoder states <paramref name="promptEmbeds"/> [B, L, D] (takes ownership).</summary>
    public static Conditioning Condition(Tensor promptEmbeds) => new(new Dictionary<string, Tensor> { [PromptEmbeds] = promptEmbeds });

    /// <inheritdoc />
    public bool NeedsUnconditional(SamplingOptions options) => options.UsesGuidance;

    /// <inheritdoc />
    /// <remarks>
    /// The denoising loop never waits for the device: the timesteps and every step's noise are on it before the loop.
    /// </remarks>
    public Rollout Sample(Conditioning condition, Conditioning? unconditional, SamplingOptions options, Generator? generator, IProgress<int>? progress,
        Tensor? initialNoise = null)
    {
        options.Validate();
        DdimPolicySteps.RequireDdim(options, "Stable Diffusion 1/2");
        int factor = Pipeline.VaeScaleFactor;
        int height = options.Height ?? DefaultImageSize, width = options.Width ?? DefaultImageSize;
        if (height % factor != 0 || width % factor != 0)
        {
            throw new ArgumentException($"height and width must be multiples of {factor} for this model, got {height}x{width}");
        }
        var promptEmbeds = condition[PromptEmbeds];
        var negativeEmbeds = unconditional?[PromptEmbeds];
        var shape = new long[] { condition.Count, Pipeline.LatentChannels, height / factor, width / factor };
        return DdimPolicySteps.Sample(_scheduler, (x, t) => PredictNoise(_unet, x, t, promptEmbeds, negativeEmbeds, options.GuidanceScale),
            shape, Device, options, generator, progress, initialNoise);
    }

    /// <inheritdoc />
    public int StochasticSteps(SamplingOptions options) => DdimPolicySteps.StochasticSteps(_scheduler, options);

    /// <inheritdoc />
    public Transition Evaluate(TransitionBatch batch, SamplingOptions options) =>
        DdimPolicySteps.Evaluate(_scheduler, (x, t) => PredictNoise(_unet, x, t, batch.Condition[PromptEmbeds], batch.Unconditional?[PromptEmbeds], options.GuidanceScale),
            batch, options);

    /// <inheritdoc />
    public PredictionType Prediction => DdimPolicySteps.Prediction(_scheduler);

    /// <inheritdoc />
    public Tensor Predict(Tensor latents, Tensor times, Conditioning condition, Conditioning? unconditional, double guidanceScale) =>
        PredictNoise(_unet, latents, times, condition[PromptEmbeds], unconditional?[PromptEmbeds], guidanceScale);

    /// <inheritdoc />
    /// <remarks>
    /// As jannerm/ddpo's <c>diffusion.train_step</c>: x_t = add_noise(x_0, noise, t) with t ~ U{0 .. num_train_timesteps - 1};
    /// the prediction is the guided one when <paramref name="unconditional"/> is given (<c>train_cfg</c>), regressed onto
    /// the scheduler's training target (the noise for epsilon-prediction models). Draws t, then the noise.
    /// </remarks>
    public Tensor DenoisingLoss(Tensor x0, Conditioning condition, Conditioning? unconditional, double guidanceScale, Generator generator) =>
        DdimPolicySteps.DenoisingLoss(_scheduler, x0, generator,
            (noisy, t) => PredictNoise(_unet, noisy, t, condition[PromptEmbeds], unconditional?[PromptEmbeds], guidanceScale));

    /// <inheritdoc />
    public void SkipDenoisingDraws(long[] x0Shape, Generator generator) => DdimPolicySteps.SkipDraws(_scheduler, x0Shape, generator);

    /// <inheritdoc />
    public Tensor Decode(Tensor latents) => Pipeline.DecodeToImages(latents);

    /// <inheritdoc />
    public Tensor InitialNoise(long count, SamplingOptions options, Generator? generator) =>
        DdimPolicySteps.InitialNoise(count, Pipeline.LatentChannels, Pipeline.VaeScaleFactor, DefaultImageSize, options, Device, generator);

    /// <inheritdoc />
    public IStepSampler Sampler(SamplingOptions options) => DdimPolicySteps.Sampler(_scheduler, options, "Stable Diffusion 1/2");

    /// <inheritdoc />
    public Tensor AddNoise(Tensor x0, Tensor noise, Tensor times) => DdimPolicySteps.AddNoise(_scheduler, x0, noise, times);

    /// <inheritdoc />
    public Tensor PredictOriginal(Tensor modelOutput, Tensor latents, Tensor times) => DdimPolicySteps.PredictOriginal(_scheduler, modelOutput, latents, times);

    /// <inheritdoc />
    public Tensor DecodeDifferentiable(Tensor latents) => Pipeline.DecodeOnDevice(latents);

    /// <inheritdoc />
    public IDiffusionPolicy FrozenCopy()
    {
        var copy = new UNet2DConditionModel(_unet.Config, _unet.DType, _unet.Device);
        FrozenModule.CopyOf(copy, _unet);
        return new StableDiffusionPolicy(copy, _scheduler, _pipeline, ownsUnet: true);
    }

    private Tensor PredictNoise(UNet2DConditionModel unet, Tensor latents, Tensor timestep, Tensor promptEmbeds, Tensor? negativeEmbeds, double guidanceScale) =>
        GuidedNoisePredictor.Predict(unet, latents, timestep, promptEmbeds, negativeEmbeds, guidanceScale, unet.DType);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsUnet) _unet.Dispose();
    }
}
