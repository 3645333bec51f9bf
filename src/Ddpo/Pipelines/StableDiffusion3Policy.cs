using Ddpo.Models.Transformers;
using Ddpo.Policies;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// Stable Diffusion 3 / 3.5 as a policy: an <see cref="SD3Transformer2DModel"/> predicting the flow velocity from
/// T5 + CLIP states and pooled CLIP embeddings, classifier-free guidance as one batch [unconditional; conditional]
/// (diffusers' order), and a flow-matching SDE (<see cref="SamplingOptions.SdeType"/>: Flow-GRPO's Flow-SDE by default)
/// whose noise level is <see cref="SamplingOptions.Eta"/> (Flow-GRPO's <c>noise_level</c>; 0 is diffusers' Euler ODE).
/// The times are the scheduler's timesteps (sigma x 1000, float32).
/// </summary>
internal sealed class StableDiffusion3Policy : IDiffusionPolicy
{
    /// <summary>The sequence part of the conditioning: CLIP + T5 states [B, 77 + T, D].</summary>
    public const string PromptEmbeds = "prompt_embeds";

    /// <summary>The pooled part: both CLIPs' projected text embeddings [B, P].</summary>
    public const string PooledPromptEmbeds = "prompt_pooled";

    /// <summary>Flow-GRPO's LoRA targets (<c>train_sd3.py</c>): the joint attention's image and context projections.</summary>
    public static readonly IReadOnlyList<string> FlowGrpoLoraTargets =
        ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"];

    private readonly StableDiffusion3Pipeline? _pipeline;
    private readonly SD3Transformer2DModel _transformer;
    private readonly FlowMatchEulerDiscreteScheduler _scheduler;
    private readonly bool _ownsTransformer;

    /// <summary>The policy of <paramref name="pipeline"/>'s components.</summary>
    public StableDiffusion3Policy(StableDiffusion3Pipeline pipeline)
        : this(pipeline.Transformer, pipeline.Scheduler, pipeline, ownsTransformer: false)
    {
    }

    /// <summary>The policy of a transformer and a scheduler (owning the transformer when <paramref name="ownsTransformer"/>).</summary>
    public StableDiffusion3Policy(SD3Transformer2DModel transformer, FlowMatchEulerDiscreteScheduler scheduler,
        StableDiffusion3Pipeline? pipeline = null, bool ownsTransformer = false)
    {
        _pipeline = pipeline;
        _transformer = transformer;
        _scheduler = scheduler;
        _ownsTransformer = ownsTransformer;
    }

    private StableDiffusion3Pipeline Pipeline => _pipeline
        ?? throw new InvalidOperationException("this SD3 policy has a transformer and a scheduler only: no text encoders or VAE");

    /// <inheritdoc />
    public string Family => "Stable Diffusion 3 (flow matching)";

    /// <inheritdoc />
    public Device Device => _transformer.Device;

    /// <inheritdoc />
    public ScalarType DType => _transformer.DType;

    /// <inheritdoc />
    public nn.Module Denoiser => _transformer;

    /// <inheritdoc />
    public string DenoiserName => "transformer";

    /// <inheritdoc />
    public IReadOnlyList<string> LoraTargets => FlowGrpoLoraTargets;

    /// <inheritdoc />
    public int DefaultImageSize => Pipeline.DefaultImageSize;

    /// <inheritdoc />
    public Conditioning Encode(IReadOnlyList<string> prompts)
    {
        var (embeds, pooled) = Pipeline.EncodePrompt(prompts);
        return Condition(embeds, pooled);
    }

    /// <summary>The conditioning of prompt states [B, L, D] and pooled embeddings [B, P] (takes ownership).</summary>
    public static Conditioning Condition(Tensor promptEmbeds, Tensor pooledPromptEmbeds) =>
        new(new Dictionary<string, Tensor> { [PromptEmbeds] = promptEmbeds, [PooledPromptEmbeds] = pooledPromptEmbeds });

    /// <inheritdoc />
    public bool NeedsUnconditional(SamplingOptions options) => options.UsesGuidance;

    /// <summary>The sampler when <see cref="SamplingOptions.SdeType"/> is not given: Flow-GRPO's.</summary>
    public const string DefaultSdeType = "flow_sde";

    /// <inheritdoc />
    public IStepSampler Sampler(SamplingOptions options) => options.SdeType == "ddim"
        ? throw new ArgumentException("sample.sde_type = \"ddim\" is the UNet models' sampler; an SD3 transformer samples with \"flow_sde\", \"dance_sde\" or \"cps\" (or \"auto\")")
        : FlowSamplers.Create(options.SdeType ?? DefaultSdeType, _scheduler);

    /// <inheritdoc />
    public Rollout Sample(Conditioning condition, Conditioning? unconditional, SamplingOptions options, Generator? generator, IProgress<int>? progress,
        Tensor? initialNoise = null)
    {
        options.Validate();
        int factor = Pipeline.VaeScaleFactor * _transformer.Config.PatchSize;
        int height = options.Height ?? DefaultImageSize, width = options.Width ?? DefaultImageSize;
        if (height % factor != 0 || width % factor != 0)
        {
            throw new ArgumentException($"height and width must be multiples of {factor} for this model (VAE factor x patch size), got {height}x{width}");
        }
        using var drawn = initialNoise is null ? InitialNoise(condition.Count, options, generator) : null;
        return SampleFrom(initialNoise ?? drawn!, condition, unconditional, options, generator, progress);
    }

    /// <inheritdoc />
    public Tensor InitialNoise(long count, SamplingOptions options, Generator? generator)
    {
        int vae = Pipeline.VaeScaleFactor;
        int height = options.Height ?? DefaultImageSize, width = options.Width ?? DefaultImageSize;
        using var scope = NewDisposeScope();
        var noise = randn([count, _transformer.Config.InChannels, height / vae, width / vae], dtype: ScalarType.Float32, generator: generator);
        return HostCopy.ToDevice(noise, Device).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor AddNoise(Tensor x0, Tensor noise, Tensor times) => FlowPolicySteps.AddNoise(x0, noise, times);

    /// <inheritdoc />
    public Tensor PredictOriginal(Tensor modelOutput, Tensor latents, Tensor times) => FlowPolicySteps.PredictOriginal(modelOutput, latents, times);

    /// <inheritdoc />
    public Tensor DecodeDifferentiable(Tensor latents) => Pipeline.DecodeOnDevice(latents);

    /// <summary>
    /// <see cref="Sample"/> from the given initial latents [B, C, h, w] (CPU or device; not taken over): diffusers'
    /// denoising loop with the sampler's steps, the per-step noise drawn from <paramref name="generator"/>.
    /// </summary>
    internal Rollout SampleFrom(Tensor initialLatents, Conditioning condition, Conditioning? unconditional, SamplingOptions options,
        Generator? generator, IProgress<int>? progress)
    {
        var sampler = Sampler(options);
        return FlowPolicySteps.Sample(sampler, (x, t) => PredictVelocity(_transformer, x, t, condition, unconditional, options.GuidanceScale),
            initialLatents, Device, options, generator, progress);
    }

    /// <inheritdoc />
    public int StochasticSteps(SamplingOptions options) => Sampler(options).StochasticSteps(options.NumSteps);

    /// <inheritdoc />
    public Transition Evaluate(TransitionBatch batch, SamplingOptions options)
    {
        using var scope = NewDisposeScope();
        var sampler = Sampler(options);
        using (sampler.Schedule(options.NumSteps)) { }
        var v = PredictVelocity(_transformer, batch.Latents, batch.Times, batch.Condition, batch.Unconditional, options.GuidanceScale);
        var step = sampler.Step(v, batch.Times, batch.Latents, options.Eta, next: batch.Next);
        return new Transition(step.Next.MoveToOuterDisposeScope(), step.LogProb.MoveToOuterDisposeScope(),
            step.Mean.MoveToOuterDisposeScope(), step.Std.MoveToOuterDisposeScope());
    }

    /// <inheritdoc />
    public PredictionType Prediction => PredictionType.Velocity;

    /// <inheritdoc />
    public Tensor Predict(Tensor latents, Tensor times, Conditioning condition, Conditioning? unconditional, double guidanceScale) =>
        PredictVelocity(_transformer, latents, times, condition, unconditional, guidanceScale);

    /// <inheritdoc />
    /// <remarks>
    /// Rectified flow's training objective (SD3's): sigma ~ U(0, 1) per sample, x_sigma = (1 - sigma) x_0 + sigma noise,
    /// the (guided, with <paramref name="unconditional"/>) velocity regressed onto noise - x_0. Draws sigma, then the noise.
    /// </remarks>
    public Tensor DenoisingLoss(Tensor x0, Conditioning condition, Conditioning? unconditional, double guidanceScale, Generator generator) =>
        FlowPolicySteps.DenoisingLoss(x0, generator, _scheduler.Config.NumTrainTimesteps,
            (noisy, t) => PredictVelocity(_transformer, noisy, t, condition, unconditional, guidanceScale));

    /// <inheritdoc />
    public void SkipDenoisingDraws(long[] x0Shape, Generator generator) => FlowPolicySteps.SkipDraws(x0Shape, generator);

    /// <inheritdoc />
    public Tensor Decode(Tensor latents) => Pipeline.DecodeToImages(latents);

    /// <inheritdoc />
    public IDiffusionPolicy FrozenCopy()
    {
        var copy = new SD3Transformer2DModel(_transformer.Config);
        copy.to(_transformer.DType).to(_transformer.Device);
        FrozenModule.CopyOf(copy, _transformer);
        return new StableDiffusion3Policy(copy, _scheduler, _pipeline, ownsTransformer: true);
    }

    /// <summary>
    /// The guided velocity v_neg + g (v_pos - v_neg), both halves as one batch [negative; positive] in the model's
    /// dtype; only the conditional pass without <paramref name="unconditional"/>. Float32 out (float64 for a float64
    /// model); gradients flow when enabled.
    /// </summary>
    internal static Tensor PredictVelocity(SD3Transformer2DModel transformer, Tensor latents, Tensor timestep, Conditioning condition,
        Conditioning? unconditional, double guidanceScale)
    {
        using var scope = NewDisposeScope();
        var dtype = transformer.DType;
        var outType = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var x = latents.to(dtype);
        long b = latents.shape[0];
        var t = (timestep.dim() == 0 ? timestep.expand(b) : timestep).to(ScalarType.Float32);
        Tensor v;
        if (unconditional is null)
        {
            v = transformer.forward(x, condition[PromptEmbeds].to(dtype), condition[PooledPromptEmbeds].to(dtype), t).to(outType);
        }
        else
        {
            var both = transformer.forward(cat([x, x]),
                cat([unconditional[PromptEmbeds], condition[PromptEmbeds]]).to(dtype),
                cat([unconditional[PooledPromptEmbeds], condition[PooledPromptEmbeds]]).to(dtype),
                cat([t, t])).to(outType);
            var halves = both.chunk(2);
            v = halves[0] + guidanceScale * (halves[1] - halves[0]);
        }
        return v.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsTransformer) _transformer.Dispose();
    }
}
