using Ddpo.Models.Transformers;
using Ddpo.Policies;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// FLUX.1 as a policy: a <see cref="FluxTransformer2DModel"/> predicting the flow velocity of the 2x2-packed latents
/// from T5 states and CLIP's pooled embedding, guided by the guidance embedding (<see cref="SamplingOptions.GuidanceScale"/>
/// as FluxPipeline's <c>guidance_scale</c>; FLUX.1-schnell has none), never by a classifier-free pass. The sampler
/// (<see cref="SamplingOptions.SdeType"/>: Flow-SDE by default, DanceGRPO's Dance-SDE, CPS) steps the unpacked latents
/// [B, 16, h, w] over FluxPipeline's sigmas <c>linspace(1, 1/n, n)</c> shifted by mu of the image's token count.
/// </summary>
internal sealed class FluxPolicy : IDiffusionPolicy
{
    /// <summary>FLUX LoRA targets: the attention projections of the double- and single-stream blocks (to_q/k/v also match the single blocks').</summary>
    public static readonly IReadOnlyList<string> LoraTargetNames = StableDiffusion3Policy.FlowGrpoLoraTargets;

    private readonly FluxPipeline? _pipeline;
    private readonly FluxTransformer2DModel _transformer;
    private readonly FlowMatchEulerDiscreteScheduler _scheduler;
    private readonly bool _ownsTransformer;

    /// <summary>The policy of <paramref name="pipeline"/>'s components.</summary>
    public FluxPolicy(FluxPipeline pipeline) : this(pipeline.Transformer, pipeline.Scheduler, pipeline, ownsTransformer: false)
    {
    }

    private FluxPolicy(FluxTransformer2DModel transformer, FlowMatchEulerDiscreteScheduler scheduler, FluxPipeline? pipeline, bool ownsTransformer)
    {
        _pipeline = pipeline;
        _transformer = transformer;
        _scheduler = scheduler;
        _ownsTransformer = ownsTransformer;
    }

    private FluxPipeline Pipeline => _pipeline
        ?? throw new InvalidOperationException("this FLUX policy has a transformer and a scheduler only: no text encoders or VAE");

    /// <inheritdoc />
    public string Family => "FLUX.1 (flow matching, guidance-distilled)";

    /// <inheritdoc />
    public Device Device => _transformer.Device;

    /// <inheritdoc />
    public ScalarType DType => _transformer.DType;

    /// <inheritdoc />
    public nn.Module Denoiser => _transformer;

    /// <inheritdoc />
    public string DenoiserName => "transformer";

    /// <inheritdoc />
    public IReadOnlyList<string> LoraTargets => LoraTargetNames;

    /// <inheritdoc />
    public int DefaultImageSize => Pipeline.DefaultImageSize;

    /// <inheritdoc />
    public Conditioning Encode(IReadOnlyList<string> prompts)
    {
        var (embeds, pooled) = Pipeline.EncodePrompt(prompts);
        return StableDiffusion3Policy.Condition(embeds, pooled);
    }

    /// <inheritdoc />
    /// <remarks>FLUX is guided by its guidance embedding: never an unconditional pass.</remarks>
    public bool NeedsUnconditional(SamplingOptions options) => false;

    private FlowSampler Sampler(SamplingOptions options, long latentHeight, long latentWidth) => options.SdeType == "ddim"
        ? throw new ArgumentException("sample.sde_type = \"ddim\" is the UNet models' sampler; a FLUX transformer samples with \"flow_sde\", \"dance_sde\" or \"cps\" (or \"auto\")")
        : FlowSamplers.Create(options.SdeType ?? StableDiffusion3Policy.DefaultSdeType, _scheduler,
            _scheduler.CalculateShift(latentHeight / 2 * (latentWidth / 2)));

    private (long H, long W) LatentSize(SamplingOptions options)
    {
        int vae = Pipeline.VaeScaleFactor;
        int height = options.Height ?? DefaultImageSize, width = options.Width ?? DefaultImageSize;
        if (height % (2 * vae) != 0 || width % (2 * vae) != 0)
        {
            throw new ArgumentException($"height and width must be multiples of {2 * vae} for this model (VAE factor x 2x2 packing), got {height}x{width}");
        }
        return (height / vae, width / vae);
    }

    /// <inheritdoc />
    public Rollout Sample(Conditioning condition, Conditioning? unconditional, SamplingOptions options, Generator? generator, IProgress<int>? progress,
        Tensor? initialNoise = null)
    {
        options.Validate();
        using var drawn = initialNoise is null ? InitialNoise(condition.Count, options, generator) : null;
        return SampleFrom(initialNoise ?? drawn!, condition, options, generator, progress);
    }

    /// <inheritdoc />
    public Tensor InitialNoise(long count, SamplingOptions options, Generator? generator)
    {
        var (h, w) = LatentSize(options);
        using var scope = NewDisposeScope();
        var noise = randn([count, _transformer.Config.InChannels / 4, h, w], dtype: ScalarType.Float32, generator: generator);
        return HostCopy.ToDevice(noise, Device).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public IStepSampler Sampler(SamplingOptions options)
    {
        var (h, w) = LatentSize(options);
        return Sampler(options, h, w);
    }

    /// <inheritdoc />
    public Tensor AddNoise(Tensor x0, Tensor noise, Tensor times) => FlowPolicySteps.AddNoise(x0, noise, times);

    /// <inheritdoc />
    public Tensor PredictOriginal(Tensor modelOutput, Tensor latents, Tensor times) => FlowPolicySteps.PredictOriginal(modelOutput, latents, times);

    /// <inheritdoc />
    public Tensor DecodeDifferentiable(Tensor latents) => Pipeline.DecodeOnDevice(latents);

    /// <summary>
    /// <see cref="Sample"/> from the given unpacked initial latents [B, C, h, w] (not taken over): FluxPipeline's loop
    /// with the sampler's steps, the per-step noise drawn from <paramref name="generator"/>.
    /// </summary>
    internal Rollout SampleFrom(Tensor initialLatents, Conditioning condition, SamplingOptions options, Generator? generator, IProgress<int>? progress)
    {
        var sampler = Sampler(options, initialLatents.shape[2], initialLatents.shape[3]);
        return FlowPolicySteps.Sample(sampler, (x, t) => PredictVelocity(_transformer, x, t, condition, options.GuidanceScale),
            initialLatents, Device, options, generator, progress);
    }

    /// <inheritdoc />
    public int StochasticSteps(SamplingOptions options)
    {
        var (h, w) = LatentSize(options);
        return Sampler(options, h, w).StochasticSteps(options.NumSteps);
    }

    /// <inheritdoc />
    public Transition Evaluate(TransitionBatch batch, SamplingOptions options)
    {
        using var scope = NewDisposeScope();
        var sampler = Sampler(options, batch.Latents.shape[2], batch.Latents.shape[3]);
        using (sampler.Schedule(options.NumSteps)) { }
        var v = PredictVelocity(_transformer, batch.Latents, batch.Times, batch.Condition, options.GuidanceScale);
        var step = sampler.Step(v, batch.Times, batch.Latents, options.Eta, next: batch.Next);
        return new Transition(step.Next.MoveToOuterDisposeScope(), step.LogProb.MoveToOuterDisposeScope(),
            step.Mean.MoveToOuterDisposeScope(), step.Std.MoveToOuterDisposeScope());
    }

    /// <inheritdoc />
    public PredictionType Prediction => PredictionType.Velocity;

    /// <inheritdoc />
    /// <remarks>FLUX guides through its guidance embedding: <paramref name="unconditional"/> is not used.</remarks>
    public Tensor Predict(Tensor latents, Tensor times, Conditioning condition, Conditioning? unconditional, double guidanceScale) =>
        PredictVelocity(_transformer, latents, times, condition, guidanceScale);

    /// <inheritdoc />
    /// <remarks>Rectified flow's objective, as <see cref="StableDiffusion3Policy.DenoisingLoss"/>: sigma ~ U(0, 1), velocity target noise - x_0.</remarks>
    public Tensor DenoisingLoss(Tensor x0, Conditioning condition, Conditioning? unconditional, double guidanceScale, Generator generator) =>
        FlowPolicySteps.DenoisingLoss(x0, generator, _scheduler.Config.NumTrainTimesteps,
            (noisy, t) => PredictVelocity(_transformer, noisy, t, condition, guidanceScale));

    /// <inheritdoc />
    public void SkipDenoisingDraws(long[] x0Shape, Generator generator) => FlowPolicySteps.SkipDraws(x0Shape, generator);

    /// <inheritdoc />
    public Tensor Decode(Tensor latents) => Pipeline.DecodeToImages(latents);

    /// <inheritdoc />
    public IDiffusionPolicy FrozenCopy()
    {
        var copy = new FluxTransformer2DModel(_transformer.Config, _transformer.DType, _transformer.Device);
        FrozenModule.CopyOf(copy, _transformer);
        return new FluxPolicy(copy, _scheduler, _pipeline, ownsTransformer: true);
    }

    /// <summary>
    /// The velocity of unpacked latents [B, C, h, w] at scheduler times (sigma x 1000) <paramref name="timestep"/>: packed,
    /// the transformer called with t / 1000 and, when it has a guidance embedding, <paramref name="guidanceScale"/>
    /// (FluxPipeline's call), and unpacked. Float32 out (float64 for a float64 model); gradients flow when enabled.
    /// </summary>
    internal static Tensor PredictVelocity(FluxTransformer2DModel transformer, Tensor latents, Tensor timestep, Conditioning condition, double guidanceScale)
    {
        using var scope = NewDisposeScope();
        var dtype = transformer.DType;
        var outType = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        long b = latents.shape[0], h = latents.shape[2], w = latents.shape[3];
        var device = latents.device;
        var t = (timestep.dim() == 0 ? timestep.expand(b) : timestep).to(ScalarType.Float32) / 1000;
        var embeds = condition[StableDiffusion3Policy.PromptEmbeds];
        var textIds = zeros([embeds.shape[1], 3], ScalarType.Float32, device);
        var guidance = transformer.Config.GuidanceEmbeds ? full([b], guidanceScale, ScalarType.Float32, device) : null;
        var packed = transformer.forward(FluxLatents.Pack(latents.to(dtype)), embeds.to(dtype),
            condition[StableDiffusion3Policy.PooledPromptEmbeds].to(dtype), t, FluxLatents.ImageIds(h, w, device), textIds, guidance);
        return FluxLatents.Unpack(packed.to(outType), h, w).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsTransformer) _transformer.Dispose();
    }
}
