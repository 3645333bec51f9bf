using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// diffusers' DDIMScheduler with ddpo-pytorch's <c>ddim_step_with_logprob</c>: every step with
/// eta &gt; 0 samples from a Gaussian whose exact log-density is returned, so denoising is an MDP
/// with a differentiable policy. Timesteps may differ per sample. The step math runs in float32
/// whatever the model dtype (more accurate log-ratios than the reference's fp16 path).
/// The last step follows diffusers or ddpo-pytorch as <see cref="DdimFinalStep"/> chooses; with
/// <see cref="DdimFinalStep.Diffusers"/> the results pass diffusers' own DDIM scheduler tests.
/// </summary>
internal sealed class DdimScheduler : IDisposable
{
    private readonly Dictionary<string, Tensor> _alphasByDevice = new();
    private readonly Tensor _alphasCumprod;

    /// <summary>The configuration this scheduler was built from.</summary>
    public DdimSchedulerConfig Config { get; }

    /// <summary>Cumulative products of (1 - beta), float32 on the CPU, length <c>NumTrainTimesteps</c>.</summary>
    public Tensor AlphasCumprod => _alphasCumprod;

    /// <summary>diffusers' <c>final_alpha_cumprod</c>: alpha_cumprod after the last step (1 when <c>set_alpha_to_one</c>, else alphas_cumprod[0]).</summary>
    public float FinalAlphaCumprod { get; }

    /// <summary>The inference timesteps, descending, set by <see cref="SetTimesteps"/>.</summary>
    public long[] Timesteps { get; private set; } = [];

    /// <summary>Number of inference steps set by <see cref="SetTimesteps"/> (0 before).</summary>
    public int NumInferenceSteps { get; private set; }

    /// <summary>Builds the beta schedule.</summary>
    public DdimScheduler(DdimSchedulerConfig config)
    {
        Config = config;
        using var scope = NewDisposeScope();
        int n = config.NumTrainTimesteps;
        if (n < 1) throw new ArgumentException($"num_train_timesteps must be >= 1, got {n}");
        Tensor betas = config.BetaSchedule switch
        {
            "linear" => linspace(config.BetaStart, config.BetaEnd, n, dtype: ScalarType.Float32),
            "scaled_linear" => linspace(Math.Sqrt(config.BetaStart), Math.Sqrt(config.BetaEnd), n, dtype: ScalarType.Float32).pow(2),
            "squaredcos_cap_v2" => CosineBetas(n),
            _ => throw new ArgumentException($"beta_schedule '{config.BetaSchedule}' is not supported"),
        };
        _alphasCumprod = cumprod(1.0f - betas, 0).MoveToOuterDisposeScope();
        FinalAlphaCumprod = config.SetAlphaToOne ? 1.0f : _alphasCumprod[0].item<float>();
    }

    private static Tensor CosineBetas(int n)
    {
        static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
        var betas = new float[n];
        for (int i = 0; i < n; i++)
        {
            betas[i] = (float)Math.Min(1 - AlphaBar((i + 1.0) / n) / AlphaBar((double)i / n), 0.999);
        }
        return tensor(betas);
    }

    /// <summary>Chooses <paramref name="numInferenceSteps"/> timesteps with the configured spacing.</summary>
    public void SetTimesteps(int numInferenceSteps)
    {
        int n = Config.NumTrainTimesteps;
        if (numInferenceSteps < 1 || numInferenceSteps > n)
        {
            throw new ArgumentException($"the number of inference steps (sample.num_steps) must be in [1, num_train_timesteps = {n}], got {numInferenceSteps}");
        }
        long[] ts = Config.TimestepSpacing switch
        {
            "leading" => Enumerable.Range(0, numInferenceSteps).Reverse()
                .Select(i => (long)i * (n / numInferenceSteps) + Config.StepsOffset).ToArray(),
            "trailing" => TrailingTimesteps(n, numInferenceSteps),
            "linspace" => Enumerable.Range(0, numInferenceSteps).Reverse()
                .Select(i => (long)Math.Round(numInferenceSteps == 1 ? 0 : i * (n - 1.0) / (numInferenceSteps - 1), MidpointRounding.ToEven)).ToArray(),
            _ => throw new ArgumentException($"timestep_spacing '{Config.TimestepSpacing}' is not supported"),
        };
        Timesteps = ts;
        NumInferenceSteps = numInferenceSteps;
    }

    // numpy's round(arange(n, 0, -n / steps)) - 1: arange has ceil(n / ratio) elements n - i * ratio.
    private static long[] TrailingTimesteps(int n, int steps)
    {
        double ratio = (double)n / steps;
        int count = (int)Math.Ceiling(n / ratio);
        return Enumerable.Range(0, count).Select(i => (long)Math.Round(n - i * ratio, MidpointRounding.ToEven) - 1).ToArray();
    }

    /// <summary>The gap between consecutive inference timesteps (num_train_timesteps // num_inference_steps).</summary>
    public long StepGap => NumInferenceSteps == 0
        ? throw new InvalidOperationException("call SetTimesteps before stepping")
        : Config.NumTrainTimesteps / NumInferenceSteps;

    private Tensor AlphasOn(Device device)
    {
        var key = device.ToString();
        if (!_alphasByDevice.TryGetValue(key, out var t))
        {
            t = _alphasCumprod.to(device).DetachFromDisposeScope();
            _alphasByDevice[key] = t;
        }
        return t;
    }

    private static Tensor LeftBroadcast(Tensor t, long[] shape)
    {
        var view = t.shape.Concat(Enumerable.Repeat(1L, shape.Length - t.shape.Length)).ToArray();
        return t.reshape(view);
    }

    /// <summary>
    /// diffusers' <c>_get_variance(timestep, prev_timestep)</c>: the DDIM variance (eta = 1) of the step from
    /// <paramref name="timestep"/> to <paramref name="prevTimestep"/>; a negative previous timestep uses
    /// <see cref="FinalAlphaCumprod"/> (ddpo-pytorch clamps it to 0 instead; pass 0 for its value).
    /// </summary>
    public double GetVariance(long timestep, long prevTimestep)
    {
        float At(long i)
        {
            using var a = _alphasCumprod[i];
            return a.item<float>();
        }
        float alphaT = At(timestep);
        float alphaPrev = prevTimestep >= 0 ? At(prevTimestep) : FinalAlphaCumprod;
        float betaT = 1 - alphaT, betaPrev = 1 - alphaPrev;
        return betaPrev / betaT * (1 - alphaT / alphaPrev);
    }

    /// <summary>
    /// How many of the <see cref="Timesteps"/>, from the first, are stochastic (positive variance) with
    /// <paramref name="finalStep"/>. Only the last step can have zero variance: with <see cref="DdimFinalStep.Diffusers"/>
    /// when <c>set_alpha_to_one</c> makes it step to alpha_cumprod 1, and in either mode when it is timestep 0
    /// (<c>steps_offset = 0</c>), which steps from alphas_cumprod[0] to itself. Only stochastic steps have a
    /// log-probability, so only these are DDPO actions (with Stable Diffusion's scheduler: all of them).
    /// </summary>
    public int StochasticStepCount(DdimFinalStep finalStep)
    {
        if (NumInferenceSteps == 0) throw new InvalidOperationException("call SetTimesteps first");
        int count = 0;
        foreach (var t in Timesteps)
        {
            long prev = t - StepGap;
            if (finalStep == DdimFinalStep.Ddpo) prev = Math.Max(prev, 0);
            if (!(GetVariance(t, prev) > 0)) break;
            count++;
        }
        return count;
    }

    /// <summary>alpha_cumprod at the given timesteps (int64 tensor), float32, on the timesteps' device.</summary>
    public Tensor AlphaCumprodAt(Tensor timesteps) => AlphasOn(timesteps.device).gather(0, timesteps.to(ScalarType.Int64).flatten()).reshape(timesteps.shape);

    /// <summary>
    /// One DDIM step from <paramref name="sample"/> (x_t) at <paramref name="timestep"/> (0-d or [B] int64)
    /// given the model output. With <paramref name="prevSample"/> null a new x_{t-1} is drawn (using
    /// <paramref name="generator"/>); otherwise the log-probability of the given x_{t-1} is computed,
    /// which is what DDPO training does. <paramref name="finalStep"/> chooses what a negative previous
    /// timestep means: diffusers' <see cref="FinalAlphaCumprod"/> (the default) or ddpo-pytorch's clamp at 0.
    /// <paramref name="noise"/>, when given, is the standard-normal draw to use instead of the generator
    /// (the pipeline draws it on the CPU so that seeds reproduce across devices). Where the step's
    /// standard deviation is 0 (eta = 0, or diffusers' last step with <c>set_alpha_to_one</c>) the step is
    /// deterministic and its log-probability is undefined (NaN or infinite).
    /// </summary>
    public DdimStepResult Step(Tensor modelOutput, Tensor timestep, Tensor sample, double eta,
        Tensor? prevSample = null, Generator? generator = null, Tensor? noise = null,
        DdimFinalStep finalStep = DdimFinalStep.Diffusers)
    {
        if (NumInferenceSteps == 0) throw new InvalidOperationException("call SetTimesteps before Step");
        using var scope = NewDisposeScope();
        var device = sample.device;
        var shape = sample.shape;
        long batch = shape[0];
        var t = timestep.to(ScalarType.Int64, device);
        if (t.dim() == 0) t = t.expand(batch);
        var prevT = t - StepGap;

        // float32 at least (float64 stays float64, e.g. for gradient checks).
        var compute = sample.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var alphas = AlphasOn(device).to(compute);
        var alphaT = LeftBroadcast(alphas.gather(0, t), shape);
        var alphaPrevAt = alphas.gather(0, prevT.clamp(0, Config.NumTrainTimesteps - 1));
        // ddpo-pytorch clamps the previous timestep at 0; diffusers uses final_alpha_cumprod below 0.
        var alphaPrev = LeftBroadcast(finalStep == DdimFinalStep.Ddpo
            ? alphaPrevAt
            : where(prevT >= 0, alphaPrevAt, full_like(alphaPrevAt, FinalAlphaCumprod)), shape);
        var betaT = 1 - alphaT;
        var betaPrev = 1 - alphaPrev;

        var x = sample.to(compute);
        var output = modelOutput.to(compute);
        Tensor predOriginal, predEpsilon;
        switch (Config.PredictionType)
        {
            case "epsilon":
                predOriginal = (x - betaT.sqrt() * output) / alphaT.sqrt();
                predEpsilon = output;
                break;
            case "sample":
                predOriginal = output;
                predEpsilon = (x - alphaT.sqrt() * predOriginal) / betaT.sqrt();
                break;
            case "v_prediction":
                predOriginal = alphaT.sqrt() * x - betaT.sqrt() * output;
                predEpsilon = alphaT.sqrt() * output + betaT.sqrt() * x;
                break;
            default:
                throw new InvalidOperationException($"prediction_type '{Config.PredictionType}' is not supported");
        }
        if (Config.ClipSample)
        {
            predOriginal = predOriginal.clamp(-Config.ClipSampleRange, Config.ClipSampleRange);
        }

        var variance = betaPrev / betaT * (1 - alphaT / alphaPrev);
        var std = eta * variance.sqrt();
        var direction = (1 - alphaPrev - std.pow(2)).sqrt() * predEpsilon;
        var mean = alphaPrev.sqrt() * predOriginal + direction;

        Tensor next;
        if (prevSample is null)
        {
            var z = noise?.to(compute, device) ?? randn(output.shape, dtype: compute, device: device, generator: generator);
            next = mean + std * z;
        }
        else
        {
            next = prevSample.to(compute, device);
        }
        var logProb = -(next.detach() - mean).pow(2) / (2 * std.pow(2)) - std.log() - Math.Log(Math.Sqrt(2 * Math.PI));
        var meanDims = Enumerable.Range(1, (int)logProb.dim() - 1).Select(i => (long)i).ToArray();
        logProb = logProb.mean(meanDims);

        return new DdimStepResult(
            next.to(sample.dtype).MoveToOuterDisposeScope(),
            logProb.MoveToOuterDisposeScope(),
            mean.MoveToOuterDisposeScope(),
            std.MoveToOuterDisposeScope(),
            predOriginal.MoveToOuterDisposeScope());
    }

    /// <summary>Forward diffusion q(x_t | x_0): sqrt(a) x_0 + sqrt(1 - a) noise, per-sample timesteps.</summary>
    public Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var a = LeftBroadcast(AlphaCumprodAt(timesteps.to(original.device)), original.shape).to(original.dtype);
        return (a.sqrt() * original + (1 - a).sqrt() * noise).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The regression target of the denoising loss for the configured prediction type
    /// (epsilon: the noise; v_prediction: sqrt(a) noise - sqrt(1-a) x_0; sample: x_0).
    /// </summary>
    public Tensor TrainingTarget(Tensor original, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var a = LeftBroadcast(AlphaCumprodAt(timesteps.to(original.device)), original.shape).to(original.dtype);
        Tensor target = Config.PredictionType switch
        {
            "epsilon" => noise.alias(),
            "v_prediction" => a.sqrt() * noise - (1 - a).sqrt() * original,
            "sample" => original.alias(),
            _ => throw new InvalidOperationException($"prediction_type '{Config.PredictionType}' is not supported"),
        };
        return target.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _alphasByDevice.Values) t.Dispose();
        _alphasByDevice.Clear();
        _alphasCumprod.Dispose();
    }
}
