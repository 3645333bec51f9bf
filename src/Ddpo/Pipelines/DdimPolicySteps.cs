using Ddpo.Policies;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// What the DDIM (UNet) policies, Stable Diffusion 1.x/2.x and SDXL, share around their denoiser: DDIM with eta as the
/// stochastic sampler, its re-evaluation of recorded transitions, the epsilon/v regression loss and the prediction type.
/// Each policy gives its guided noise prediction as a function of (latents, times).
/// </summary>
internal static class DdimPolicySteps
{
    /// <summary>A flow-matching <see cref="SamplingOptions.SdeType"/> is an error for a DDIM family (<paramref name="family"/>, for the message).</summary>
    public static void RequireDdim(SamplingOptions options, string family)
    {
        if (options.SdeType is not (null or "ddim"))
        {
            throw new ArgumentException($"sample.sde_type = \"{options.SdeType}\" is a flow-matching sampler; a {family} UNet samples with \"ddim\" (or \"auto\")");
        }
    }

    /// <summary>
    /// The DDIM denoising loop from fresh noise of <paramref name="shape"/> (drawn on the CPU from <paramref name="generator"/>,
    /// then every step's noise in the same order, so a seed gives the same images on every device). The loop never waits
    /// for the device: the timesteps and every step's noise are on it before the loop.
    /// </summary>
    public static Rollout Sample(DdimScheduler scheduler, Func<Tensor, Tensor, Tensor> predictNoise, long[] shape, Device device,
        SamplingOptions options, Generator? generator, IProgress<int>? progress, Tensor? initialNoise = null)
    {
        if (initialNoise is not null && !initialNoise.shape.SequenceEqual(shape))
        {
            throw new ArgumentException($"initial noise [{string.Join(", ", initialNoise.shape)}] does not match the latents [{string.Join(", ", shape)}]");
        }
        using var outer = NewDisposeScope();
        using var noGrad = no_grad();
        var sampler = new DdimSampler(scheduler, options.FinalStep);
        var schedule = sampler.Schedule(options.NumSteps);
        long steps = schedule.shape[0];
        var latents = initialNoise is not null ? initialNoise.to(ScalarType.Float32).to(device).clone()
            : HostCopy.ToDevice(randn(shape, dtype: ScalarType.Float32, generator: generator), device); // = InitialNoise's draw
        // What the loop needs from the host goes to the device before it, without waiting: the timesteps (a scalar
        // tensor made per step is a blocking host-to-device copy, i.e. a GPU synchronisation per step) and each
        // step's noise, drawn on the CPU in the same order as before (the same images for a seed) and queued from
        // pinned memory. The loop itself only enqueues GPU work.
        var timesteps = HostCopy.ToDevice(schedule, device);
        var stepNoise = Enumerable.Range(0, (int)steps)
            .Select(_ => HostCopy.ToDevice(randn(shape, dtype: ScalarType.Float32, generator: generator), device)).ToList();
        var recorded = options.RecordTrajectory ? new List<Tensor> { latents } : null;
        var logProbs = options.RecordTrajectory ? new List<Tensor>() : null;
        for (int i = 0; i < steps; i++)
        {
            using var step = NewDisposeScope();
            var t = timesteps[i];
            var eps = predictNoise(latents, t);
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

    /// <summary>How many of the steps of <paramref name="options"/>, from the first, are stochastic.</summary>
    public static int StochasticSteps(DdimScheduler scheduler, SamplingOptions options) =>
        new DdimSampler(scheduler, options.FinalStep).StochasticSteps(options.NumSteps);

    /// <summary>Re-evaluates recorded transitions with the guided noise of <paramref name="predictNoise"/> under the current weights.</summary>
    public static Transition Evaluate(DdimScheduler scheduler, Func<Tensor, Tensor, Tensor> predictNoise, TransitionBatch batch, SamplingOptions options)
    {
        if (scheduler.NumInferenceSteps != options.NumSteps) scheduler.SetTimesteps(options.NumSteps);
        using var scope = NewDisposeScope();
        var eps = predictNoise(batch.Latents, batch.Times);
        var step = new DdimSampler(scheduler, options.FinalStep).Step(eps, batch.Times, batch.Latents, options.Eta, next: batch.Next);
        return new Transition(step.Next.MoveToOuterDisposeScope(), step.LogProb.MoveToOuterDisposeScope(),
            step.Mean.MoveToOuterDisposeScope(), step.Std.MoveToOuterDisposeScope());
    }

    /// <summary>The scheduler's <c>prediction_type</c> as a <see cref="PredictionType"/>.</summary>
    public static PredictionType Prediction(DdimScheduler scheduler) => scheduler.Config.PredictionType switch
    {
        "epsilon" => PredictionType.Epsilon,
        "sample" => PredictionType.Sample,
        "v_prediction" => PredictionType.VPrediction,
        var other => throw new InvalidOperationException($"scheduler prediction_type '{other}' is not supported"),
    };

    /// <summary>
    /// As jannerm/ddpo's <c>diffusion.train_step</c>: x_t = add_noise(x_0, noise, t) with t ~ U{0 .. num_train_timesteps - 1};
    /// the prediction of <paramref name="predictNoise"/> (noisy, t) regressed onto the scheduler's training target, per sample.
    /// Draws t, then the noise.
    /// </summary>
    public static Tensor DenoisingLoss(DdimScheduler scheduler, Tensor x0, Generator generator, Func<Tensor, Tensor, Tensor> predictNoise)
    {
        using var scope = NewDisposeScope();
        var device = x0.device;
        var t = randint(0, scheduler.Config.NumTrainTimesteps, [x0.shape[0]], dtype: ScalarType.Int64, generator: generator).to(device);
        var noise = randn(x0.shape, generator: generator).to(device);
        var noisy = scheduler.AddNoise(x0, noise, t);
        var prediction = predictNoise(noisy, t);
        var target = scheduler.TrainingTarget(x0, noise, t);
        return (prediction - target).pow(2).flatten(1).mean([1L]).MoveToOuterDisposeScope();
    }

    /// <summary>Makes the draws <see cref="DenoisingLoss"/> makes for a batch of <paramref name="x0Shape"/> and discards them.</summary>
    public static void SkipDraws(DdimScheduler scheduler, long[] x0Shape, Generator generator)
    {
        using var scope = NewDisposeScope();
        randint(0, scheduler.Config.NumTrainTimesteps, [x0Shape[0]], dtype: ScalarType.Int64, generator: generator);
        randn(x0Shape, generator: generator);
    }

    /// <summary>
    /// The initial latents of <paramref name="count"/> samples at <paramref name="options"/>' size (default
    /// <paramref name="defaultSize"/> px), drawn on the CPU as <see cref="Sample"/> draws them first, then on <paramref name="device"/>.
    /// </summary>
    public static Tensor InitialNoise(long count, int latentChannels, int vaeScaleFactor, int defaultSize, SamplingOptions options,
        Device device, Generator? generator)
    {
        int height = options.Height ?? defaultSize, width = options.Width ?? defaultSize;
        if (height % vaeScaleFactor != 0 || width % vaeScaleFactor != 0)
        {
            throw new ArgumentException($"height and width must be multiples of {vaeScaleFactor} for this model, got {height}x{width}");
        }
        using var scope = NewDisposeScope();
        var shape = new long[] { count, latentChannels, height / vaeScaleFactor, width / vaeScaleFactor };
        return HostCopy.ToDevice(randn(shape, dtype: ScalarType.Float32, generator: generator), device).MoveToOuterDisposeScope();
    }

    /// <summary>The DDIM sampler of <paramref name="options"/> (a flow sampler is an error naming <paramref name="family"/>).</summary>
    public static IStepSampler Sampler(DdimScheduler scheduler, SamplingOptions options, string family)
    {
        RequireDdim(options, family);
        return new DdimSampler(scheduler, options.FinalStep);
    }

    /// <summary>DDPM's forward process <c>sqrt(abar) x0 + sqrt(1 - abar) noise</c> at <paramref name="times"/> (0-d or [B]); differentiable.</summary>
    public static Tensor AddNoise(DdimScheduler scheduler, Tensor x0, Tensor noise, Tensor times)
    {
        using var scope = NewDisposeScope();
        var t = times.dim() == 0 ? times.expand(x0.shape[0]) : times;
        return scheduler.AddNoise(x0, noise, t).MoveToOuterDisposeScope();
    }

    /// <summary>The DDIM step's <c>pred_original_sample</c> for the scheduler's prediction type, with its clipping if any; differentiable.</summary>
    public static Tensor PredictOriginal(DdimScheduler scheduler, Tensor modelOutput, Tensor latents, Tensor times)
    {
        using var scope = NewDisposeScope();
        var compute = latents.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var t = times.dim() == 0 ? times.expand(latents.shape[0]) : times;
        var a = scheduler.AlphaCumprodAt(t.to(latents.device)).to(compute).view(-1, 1, 1, 1);
        var x = latents.to(compute);
        var output = modelOutput.to(compute);
        var original = scheduler.Config.PredictionType switch
        {
            "epsilon" => (x - (1 - a).sqrt() * output) / a.sqrt(),
            "sample" => output,
            "v_prediction" => a.sqrt() * x - (1 - a).sqrt() * output,
            var other => throw new InvalidOperationException($"prediction_type '{other}' is not supported"),
        };
        if (scheduler.Config.ClipSample) original = original.clamp(-scheduler.Config.ClipSampleRange, scheduler.Config.ClipSampleRange);
        return original.MoveToOuterDisposeScope();
    }
}
