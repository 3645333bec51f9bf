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
    public Rollout Sample(Conditioning condition, Conditioning? unconditional, SamplingOptions options, Generator? generator, IProgress<int>? progress)
    {
        options.Validate();
        RequireDdim(options);
        int factor = Pipeline.VaeScaleFactor;
        int height = options.Height ?? DefaultImageSize, width = options.Width ?? DefaultImageSize;
        if (height % factor != 0 || width % factor != 0)
        {
            throw new ArgumentException($"height and width must be multiples of {factor} for this model, got {height}x{width}");
        }
        using var outer = NewDisposeScope();
        using var noGrad = no_grad();
        var promptEmbeds = condition[PromptEmbeds];
        var negativeEmbeds = unconditional?[PromptEmbeds];
        var sampler = new DdimSampler(_scheduler, options.FinalStep);
        var schedule = sampler.Schedule(options.NumSteps);
        long steps = schedule.shape[0];
        var latents = InitialNoise(condition.Count, options, generator);
        var shape = latents.shape;
        // What the loop needs from the host goes to the device before it, without waiting: the timesteps (a scalar
        // tensor made per step is a blocking host-to-device copy, i.e. a GPU synchronisation per step) and each
        // step's noise, drawn on the CPU in the same order as before (the same images for a seed) and queued from
        // pinned memory. The loop itself only enqueues GPU work.
        var timesteps = HostCopy.ToDevice(schedule, Device);
        var stepNoise = Enumerable.Range(0, (int)steps)
            .Select(_ => HostCopy.ToDevice(randn(shape, dtype: ScalarType.Float32, generator: generator), Device)).ToList();
        var recorded = options.RecordTrajectory ? new List<Tensor> { latents } : null;
        var logProbs = options.RecordTrajectory ? new List<Tensor>() : null;
        for (int i = 0; i < steps; i++)
        {
            using var step = NewDisposeScope();
            var t = timesteps[i];
            var eps = PredictNoise(_unet, latents, t, promptEmbeds, negativeEmbeds, options.GuidanceScale);
            var r = sampler.Step(eps, t, latents, options.EtaAt(i), noise: stepNoise[i]);
            latents = r.Next.MoveToOuterDisposeScope();
            if (recorded is not null)
            {
                recorded.Add(latents);
                logProbs!.Add(r.LogProb.MoveToOuterDisposeScope());
            }
            progress?.Report(i + 1);
        }
        var rollout = new Rollout(latents, timesteps, recorded is null ? null : stack(recorded, 1), logProbs is null ? null : stack(logProbs, 1));
        rollout.Final.MoveToOuterDisposeScope();
        rollout.Times.MoveToOuterDisposeScope();
        rollout.Latents?.MoveToOuterDisposeScope();
        rollout.LogProbs?.MoveToOuterDisposeScope();
        return rollout;
    }

    private static void RequireDdim(SamplingOptions options)
    {
        if (options.SdeType is not (null or "ddim"))
        {
            throw new ArgumentException($"sample.sde_type = \"{options.SdeType}\" is a flow-matching sampler; a Stable Diffusion 1/2 UNet samples with \"ddim\" (or \"auto\")");
        }
    }

    /// <inheritdoc />
    public int StochasticSteps(SamplingOptions options) => new DdimSampler(_scheduler, options.FinalStep).StochasticSteps(options.NumSteps);

    /// <inheritdoc />
    public Transition Evaluate(TransitionBatch batch, SamplingOptions options)
    {
        var scheduler = _scheduler;
        if (scheduler.NumInferenceSteps != options.NumSteps) scheduler.SetTimesteps(options.NumSteps);
        using var scope = NewDisposeScope();
        var eps = PredictNoise(_unet, batch.Latents, batch.Times, batch.Condition[PromptEmbeds], batch.Unconditional?[PromptEmbeds], options.GuidanceScale);
        var step = new DdimSampler(scheduler, options.FinalStep).Step(eps, batch.Times, batch.Latents, options.Eta, next: batch.Next);
        return new Transition(step.Next.MoveToOuterDisposeScope(), step.LogProb.MoveToOuterDisposeScope(),
            step.Mean.MoveToOuterDisposeScope(), step.Std.MoveToOuterDisposeScope());
    }

    /// <inheritdoc />
    public PredictionType Prediction => _scheduler.Config.PredictionType switch
    {
        "epsilon" => PredictionType.Epsilon,
        "sample" => PredictionType.Sample,
        "v_prediction" => PredictionType.VPrediction,
        var other => throw new InvalidOperationException($"scheduler prediction_type '{other}' is not supported"),
    };

    /// <inheritdoc />
    public Tensor Predict(Tensor latents, Tensor times, Conditioning condition, Conditioning? unconditional, double guidanceScale) =>
        PredictNoise(_unet, latents, times, condition[PromptEmbeds], unconditional?[PromptEmbeds], guidanceScale);

    /// <inheritdoc />
    /// <remarks>
    /// As jannerm/ddpo's <c>diffusion.train_step</c>: x_t = add_noise(x_0, noise, t) with t ~ U{0 .. num_train_timesteps - 1};
    /// the prediction is the guided one when <paramref name="unconditional"/> is given (<c>train_cfg</c>), regressed onto
    /// the scheduler's training target (the noise for epsilon-prediction models). Draws t, then the noise.
    /// </remarks>
    public Tensor DenoisingLoss(Tensor x0, Conditioning condition, Conditioning? unconditional, double guidanceScale, Generator generator)
    {
        using var scope = NewDisposeScope();
        var scheduler = _scheduler;
        var device = x0.device;
        var t = randint(0, scheduler.Config.NumTrainTimesteps, [x0.shape[0]], dtype: ScalarType.Int64, generator: generator).to(device);
        var noise = randn(x0.shape, generator: generator).to(device);
        var noisy = scheduler.AddNoise(x0, noise, t);
        var prediction = PredictNoise(_unet, noisy, t, condition[PromptEmbeds], unconditional?[PromptEmbeds], guidanceScale);
        var target = scheduler.TrainingTarget(x0, noise, t);
        return (prediction - target).pow(2).flatten(1).mean([1L]).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void SkipDenoisingDraws(long[] x0Shape, Generator generator)
    {
        using var scope = NewDisposeScope();
        randint(0, _scheduler.Config.NumTrainTimesteps, [x0Shape[0]], dtype: ScalarType.Int64, generator: generator);
        randn(x0Shape, generator: generator);
    }

    /// <inheritdoc />
    public Tensor Decode(Tensor latents) => Pipeline.DecodeToImages(latents);

    /// <inheritdoc />
    public Tensor InitialNoise(long count, SamplingOptions options, Generator? generator)
    {
        int factor = Pipeline.VaeScaleFactor;
        int height = options.Height ?? DefaultImageSize, width = options.Width ?? DefaultImageSize;
        if (height % factor != 0 || width % factor != 0)
        {
            throw new ArgumentException($"height and width must be multiples of {factor} for this model, got {height}x{width}");
        }
        using var scope = NewDisposeScope();
        var shape = new long[] { count, Pipeline.LatentChannels, height / factor, width / factor };
        return HostCopy.ToDevice(randn(shape, dtype: ScalarType.Float32, generator: generator), Device).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public IStepSampler Sampler(SamplingOptions options)
    {
        RequireDdim(options);
        return new DdimSampler(_scheduler, options.FinalStep);
    }

    /// <inheritdoc />
    public Tensor AddNoise(Tensor x0, Tensor noise, Tensor times)
    {
        using var scope = NewDisposeScope();
        var t = times.dim() == 0 ? times.expand(x0.shape[0]) : times;
        return _scheduler.AddNoise(x0, noise, t).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    /// <remarks>The DDIM step's <c>pred_original_sample</c> for the scheduler's prediction type, with its clipping if any.</remarks>
    public Tensor PredictOriginal(Tensor modelOutput, Tensor latents, Tensor times)
    {
        using var scope = NewDisposeScope();
        var compute = latents.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var t = times.dim() == 0 ? times.expand(latents.shape[0]) : times;
        var a = _scheduler.AlphaCumprodAt(t.to(latents.device)).to(compute).view(-1, 1, 1, 1);
        var x = latents.to(compute);
        var output = modelOutput.to(compute);
        var original = _scheduler.Config.PredictionType switch
        {
            "epsilon" => (x - (1 - a).sqrt() * output) / a.sqrt(),
            "sample" => output,
            "v_prediction" => a.sqrt() * x - (1 - a).sqrt() * output,
            var other => throw new InvalidOperationException($"prediction_type '{other}' is not supported"),
        };
        if (_scheduler.Config.ClipSample) original = original.clamp(-_scheduler.Config.ClipSampleRange, _scheduler.Config.ClipSampleRange);
        return original.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor DecodeDifferentiable(Tensor latents) => Pipeline.DecodeOnDevice(latents);

    /// <inheritdoc />
    public IDiffusionPolicy FrozenCopy()
    {
        var copy = new UNet2DConditionModel(_unet.Config, _unet.DType, _unet.Device);
        using (no_grad())
        {
            var source = _unet.state_dict();
            foreach (var (name, tensor) in copy.state_dict())
            {
                tensor.copy_(source[name]);
            }
        }
        foreach (var p in copy.parameters()) p.requires_grad = false;
        copy.eval();
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
