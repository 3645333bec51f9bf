using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Policies;
using Ddpo.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// Stable Diffusion XL as a policy: the text_time UNet predicting noise from both CLIPs' states, bigG's pooled
/// projection and the time ids, classifier-free guidance as one batch [unconditional; conditional] (diffusers' order),
/// and DDIM with eta as the stochastic sampler, shared with SD 1/2 (<see cref="DdimPolicySteps"/>). The time ids are
/// diffusers' defaults for the size being sampled, (H, W, 0, 0, H, W), derived from the latents' size at each
/// prediction, so a trajectory re-evaluated in training sees the ids it was sampled with.
/// </summary>
internal sealed class SdxlPolicy : IDiffusionPolicy
{
    /// <summary>The sequence part of the conditioning: CLIP-L + bigG penultimate states [B, 77, D_L + D_G].</summary>
    public const string PromptEmbeds = "prompt_embeds";

    /// <summary>The pooled part: bigG's projected text embedding [B, P] (diffusers' <c>text_embeds</c>).</summary>
    public const string PooledPromptEmbeds = "prompt_pooled";

    private readonly StableDiffusionXLPipeline _pipeline;
    private readonly UNet2DConditionModel _unet;
    private readonly bool _ownsUnet;

    /// <summary>The policy of <paramref name="pipeline"/>'s components.</summary>
    public SdxlPolicy(StableDiffusionXLPipeline pipeline) : this(pipeline.Unet, pipeline, ownsUnet: false)
    {
    }

    private SdxlPolicy(UNet2DConditionModel unet, StableDiffusionXLPipeline pipeline, bool ownsUnet)
    {
        _pipeline = pipeline;
        _unet = unet;
        _ownsUnet = ownsUnet;
    }

    private DdimScheduler Scheduler => _pipeline.Scheduler;

    /// <inheritdoc />
    public string Family => "Stable Diffusion XL (DDIM)";

    /// <inheritdoc />
    public Device Device => _unet.Device;

    /// <inheritdoc />
    public ScalarType DType => _unet.DType;

    /// <inheritdoc />
    public nn.Module Denoiser => _unet;

    /// <inheritdoc />
    public string DenoiserName => LoraKeys.Unet;

    /// <inheritdoc />
    /// <remarks>diffusers' SDXL LoRA examples (train_text_to_image_lora_sdxl.py) target the same attention projections as SD's.</remarks>
    public IReadOnlyList<string> LoraTargets => LoraAdapters.DefaultTargets;

    /// <inheritdoc />
    public int DefaultImageSize => _pipeline.DefaultImageSize;

    /// <inheritdoc />
    public Conditioning Encode(IReadOnlyList<string> prompts)
    {
        var (embeds, pooled) = _pipeline.EncodePrompt(prompts);
        return Condition(embeds, pooled);
    }

    /// <summary>The conditioning of prompt states [B, L, D] and pooled embeddings [B, P] (takes ownership).</summary>
    public static Conditioning Condition(Tensor promptEmbeds, Tensor pooledPromptEmbeds) =>
        new(new Dictionary<string, Tensor> { [PromptEmbeds] = promptEmbeds, [PooledPromptEmbeds] = pooledPromptEmbeds });

    /// <inheritdoc />
    public bool NeedsUnconditional(SamplingOptions options) => options.UsesGuidance;

    /// <inheritdoc />
    public Rollout Sample(Conditioning condition, Conditioning? unconditional, SamplingOptions options, Generator? generator, IProgress<int>? progress,
        Tensor? initialNoise = null)
    {
        options.Validate();
        DdimPolicySteps.RequireDdim(options, "Stable Diffusion XL");
        int factor = _pipeline.VaeScaleFactor;
        int height = options.Height ?? DefaultImageSize, width = options.Width ?? DefaultImageSize;
        if (height % factor != 0 || width % factor != 0)
        {
            throw new ArgumentException($"height and width must be multiples of {factor} for this model, got {height}x{width}");
        }
        var shape = new long[] { condition.Count, _pipeline.LatentChannels, height / factor, width / factor };
        // The ids go to the device once, before the loop.
        using var timeIds = StableDiffusionXLPipeline.TimeIds(condition.Count, height, width, Device);
        return DdimPolicySteps.Sample(Scheduler, (x, t) => PredictNoise(_unet, x, t, condition, unconditional, options.GuidanceScale, timeIds),
            shape, Device, options, generator, progress, initialNoise);
    }

    /// <inheritdoc />
    public int StochasticSteps(SamplingOptions options) => DdimPolicySteps.StochasticSteps(Scheduler, options);

    /// <inheritdoc />
    public Transition Evaluate(TransitionBatch batch, SamplingOptions options) =>
        DdimPolicySteps.Evaluate(Scheduler, (x, t) => PredictNoise(_unet, x, t, batch.Condition, batch.Unconditional, options.GuidanceScale), batch, options);

    /// <inheritdoc />
    public PredictionType Prediction => DdimPolicySteps.Prediction(Scheduler);

    /// <inheritdoc />
    public Tensor Predict(Tensor latents, Tensor times, Conditioning condition, Conditioning? unconditional, double guidanceScale) =>
        PredictNoise(_unet, latents, times, condition, unconditional, guidanceScale);

    /// <inheritdoc />
    /// <remarks>As Stable Diffusion's (<see cref="DdimPolicySteps.DenoisingLoss"/>), with the time ids of <paramref name="x0"/>'s size.</remarks>
    public Tensor DenoisingLoss(Tensor x0, Conditioning condition, Conditioning? unconditional, double guidanceScale, Generator generator) =>
        DdimPolicySteps.DenoisingLoss(Scheduler, x0, generator, (noisy, t) => PredictNoise(_unet, noisy, t, condition, unconditional, guidanceScale));

    /// <inheritdoc />
    public void SkipDenoisingDraws(long[] x0Shape, Generator generator) => DdimPolicySteps.SkipDraws(Scheduler, x0Shape, generator);

    /// <inheritdoc />
    public Tensor Decode(Tensor latents) => _pipeline.DecodeToImages(latents);

    /// <inheritdoc />
    public Tensor InitialNoise(long count, SamplingOptions options, Generator? generator) =>
        DdimPolicySteps.InitialNoise(count, _pipeline.LatentChannels, _pipeline.VaeScaleFactor, DefaultImageSize, options, Device, generator);

    /// <inheritdoc />
    public IStepSampler Sampler(SamplingOptions options) => DdimPolicySteps.Sampler(Scheduler, options, "Stable Diffusion XL");

    /// <inheritdoc />
    public Tensor AddNoise(Tensor x0, Tensor noise, Tensor times) => DdimPolicySteps.AddNoise(Scheduler, x0, noise, times);

    /// <inheritdoc />
    public Tensor PredictOriginal(Tensor modelOutput, Tensor latents, Tensor times) => DdimPolicySteps.PredictOriginal(Scheduler, modelOutput, latents, times);

    /// <inheritdoc />
    public Tensor DecodeDifferentiable(Tensor latents) => _pipeline.DecodeOnDevice(latents);

    /// <inheritdoc />
    public IDiffusionPolicy FrozenCopy()
    {
        var copy = new UNet2DConditionModel(_unet.Config, _unet.DType, _unet.Device);
        FrozenModule.CopyOf(copy, _unet);
        return new SdxlPolicy(copy, _pipeline, ownsUnet: true);
    }

    /// <summary>
    /// The guided noise eps_neg + g (eps_pos - eps_neg), both halves as one batch [negative; positive] in the UNet's dtype
    /// (only the conditional pass without <paramref name="unconditional"/>), with <paramref name="timeIds"/> or, when null,
    /// the default ids of the latents' pixel size. Float32 out (float64 for a float64 model); gradients flow when enabled.
    /// </summary>
    private Tensor PredictNoise(UNet2DConditionModel unet, Tensor latents, Tensor timestep, Conditioning condition,
        Conditioning? unconditional, double guidanceScale, Tensor? timeIds = null)
    {
        using var scope = NewDisposeScope();
        var dtype = unet.DType;
        var outType = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        int factor = _pipeline.VaeScaleFactor;
        long b = latents.shape[0];
        var ids = timeIds ?? StableDiffusionXLPipeline.TimeIds(b, (int)latents.shape[2] * factor, (int)latents.shape[3] * factor, latents.device);
        var x = latents.to(dtype);
        Tensor eps;
        if (unconditional is null)
        {
            eps = unet.forward(x, timestep, condition[PromptEmbeds].to(dtype), condition[PooledPromptEmbeds].to(dtype), ids).to(outType);
        }
        else
        {
            var t = timestep.dim() == 0 ? timestep : cat([timestep, timestep]);
            var both = unet.forward(cat([x, x]), t,
                cat([unconditional[PromptEmbeds], condition[PromptEmbeds]]).to(dtype),
                cat([unconditional[PooledPromptEmbeds], condition[PooledPromptEmbeds]]).to(dtype),
                cat([ids, ids])).to(outType);
            var halves = both.chunk(2);
            eps = halves[0] + guidanceScale * (halves[1] - halves[0]);
        }
        return eps.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsUnet) _unet.Dispose();
    }
}
