using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// diffusers 0.31's <c>FlowMatchEulerDiscreteScheduler</c> (SD3/3.5, FLUX.1): sigmas from 1 (noise) to 0 (data), the
/// model predicts the velocity <c>noise - data</c>, and a step is Euler's <c>x + (σ_next - σ)·v</c>. Its numbers
/// are diffusers' to the bit where diffusers computes in float32 (the tables) and to float64 rounding where it uses
/// numpy (the inference spacing, then cast to float32), quirks included: <see cref="SetTimesteps"/> without sigmas
/// spaces the <em>already shifted</em> training sigmas and shifts them again. Stateless: a step finds its sigma by
/// <see cref="IndexForTimestep"/>, as diffusers' first step does.
/// </summary>
internal sealed class FlowMatchEulerDiscreteScheduler : IDisposable
{
    private float[] _timesteps;
    private float[] _sigmas;
    private Tensor _timestepsTensor;
    private Tensor _sigmasTensor;

    /// <summary>The configuration this scheduler was built from.</summary>
    public FlowMatchEulerDiscreteSchedulerConfig Config { get; }

    /// <summary>The training sigmas after construction: <c>num_train_timesteps</c> values from 1 down, shifted unless dynamic shifting.</summary>
    public IReadOnlyList<float> InitSigmas { get; }

    /// <summary>The training timesteps after construction (<see cref="InitSigmas"/> · <c>num_train_timesteps</c>).</summary>
    public IReadOnlyList<float> InitTimesteps { get; }

    /// <summary>diffusers' <c>sigma_min</c>: the last of <see cref="InitSigmas"/> (fixed at construction).</summary>
    public double SigmaMin { get; }

    /// <summary>diffusers' <c>sigma_max</c>: the first of <see cref="InitSigmas"/>.</summary>
    public double SigmaMax { get; }

    /// <summary>Number of inference steps set by <see cref="SetTimesteps"/> (0 before).</summary>
    public int NumInferenceSteps { get; private set; }

    /// <summary>The current timesteps (σ · <c>num_train_timesteps</c>), float32 on the CPU: the training table until <see cref="SetTimesteps"/>.</summary>
    public Tensor Timesteps => _timestepsTensor;

    /// <summary>The current sigmas, float32 on the CPU; after <see cref="SetTimesteps"/> one longer than <see cref="Timesteps"/> (a terminal 0).</summary>
    public Tensor Sigmas => _sigmasTensor;

    /// <summary>The values of <see cref="Timesteps"/>.</summary>
    public IReadOnlyList<float> TimestepValues => _timesteps;

    /// <summary>The values of <see cref="Sigmas"/>.</summary>
    public IReadOnlyList<float> SigmaValues => _sigmas;

    /// <summary>Builds the training tables as diffusers' <c>__init__</c> does (float32).</summary>
    public FlowMatchEulerDiscreteScheduler(FlowMatchEulerDiscreteSchedulerConfig config)
    {
        config.Validate();
        Config = config;
        int n = config.NumTrainTimesteps;
        float shift = (float)config.Shift, shiftMinusOne = (float)(config.Shift - 1);
        var sigmas = new float[n];
        for (int i = 0; i < n; i++)
        {
            // np.linspace(1, n, n, float32)[::-1] holds the integers n..1 exactly; torch divides and shifts in float32.
            float s = (float)(n - i) / n;
            if (!config.UseDynamicShifting) s = shift * s / (1f + shiftMinusOne * s);
            sigmas[i] = s;
        }
        var timesteps = sigmas.Select(s => s * n).ToArray();
        InitSigmas = Array.AsReadOnly(sigmas.ToArray());
        InitTimesteps = Array.AsReadOnly(timesteps.ToArray());
        SigmaMin = sigmas[^1];
        SigmaMax = sigmas[0];
        _sigmas = sigmas;
        _timesteps = timesteps;
        _sigmasTensor = Host(_sigmas);
        _timestepsTensor = Host(_timesteps);
    }

    /// <summary>Builds the scheduler of a <c>scheduler_config.json</c>.</summary>
    public static FlowMatchEulerDiscreteScheduler FromConfigFile(string path) => new(FlowMatchEulerDiscreteSchedulerConfig.Load(path));

    private static Tensor Host(float[] values) => tensor(values, dtype: ScalarType.Float32).DetachFromDisposeScope();

    /// <summary>
    /// The pipelines' <c>calculate_shift</c>: <c>mu</c> for dynamic shifting, linear in the image sequence length
    /// (latent tokens after packing) through (<paramref name="baseSeqLen"/>, <paramref name="baseShift"/>) and
    /// (<paramref name="maxSeqLen"/>, <paramref name="maxShift"/>).
    /// </summary>
    public static double CalculateShift(long imageSeqLen, long baseSeqLen = 256, long maxSeqLen = 4096, double baseShift = 0.5, double maxShift = 1.15)
    {
        double m = (maxShift - baseShift) / (maxSeqLen - baseSeqLen);
        double b = baseShift - m * baseSeqLen;
        return imageSeqLen * m + b;
    }

    /// <summary><see cref="CalculateShift(long, long, long, double, double)"/> with this scheduler's config values.</summary>
    public double CalculateShift(long imageSeqLen) =>
        CalculateShift(imageSeqLen, Config.BaseImageSeqLen, Config.MaxImageSeqLen, Config.BaseShift, Config.MaxShift);

    /// <summary>diffusers' <c>time_shift(mu, 1.0, t)</c>: <c>e^mu / (e^mu + (1/t - 1))</c>.</summary>
    public static double TimeShift(double mu, double t) => Math.Exp(mu) / (Math.Exp(mu) + (1 / t - 1));

    /// <summary>
    /// diffusers' <c>set_timesteps</c>. Without <paramref name="sigmas"/>: <c>linspace(σ_max·N, σ_min·N, n) / N</c> (the
    /// shifted training extremes), then shifted; with them (FluxPipeline passes <c>linspace(1, 1/n, n)</c>) those are
    /// shifted and <paramref name="numInferenceSteps"/> is not used (as in 0.31). The shift is <c>time_shift(mu)</c>
    /// with dynamic shifting (then <paramref name="mu"/> is required), else the static one. Timesteps are σ·N in
    /// float32 and the sigmas get a terminal 0.
    /// </summary>
    public void SetTimesteps(int numInferenceSteps, double? mu = null, double[]? sigmas = null)
    {
        if (Config.UseDynamicShifting && mu is null)
        {
            throw new ArgumentException("use_dynamic_shifting is set: pass mu (CalculateShift of the image sequence length)", nameof(mu));
        }
        int n = Config.NumTrainTimesteps;
        double[] s;
        if (sigmas is null)
        {
            if (numInferenceSteps < 1) throw new ArgumentException($"the number of inference steps must be at least 1, got {numInferenceSteps}", nameof(numInferenceSteps));
            s = Linspace(SigmaMax * n, SigmaMin * n, numInferenceSteps).Select(t => t / n).ToArray();
        }
        else
        {
            if (sigmas.Length == 0) throw new ArgumentException("sigmas is empty", nameof(sigmas));
            s = sigmas.ToArray();
        }
        for (int i = 0; i < s.Length; i++)
        {
            s[i] = Config.UseDynamicShifting ? TimeShift(mu!.Value, s[i]) : Config.Shift * s[i] / (1 + (Config.Shift - 1) * s[i]);
        }
        var sigmas32 = s.Select(v => (float)v).ToArray();
        _timesteps = sigmas32.Select(v => v * n).ToArray();
        _sigmas = [.. sigmas32, 0f];
        _timestepsTensor.Dispose();
        _sigmasTensor.Dispose();
        _timestepsTensor = Host(_timesteps);
        _sigmasTensor = Host(_sigmas);
        NumInferenceSteps = s.Length;
    }

    /// <summary>numpy's <c>linspace(start, stop, num)</c> in float64: <c>start + i·step</c>, the last value exactly <paramref name="stop"/>.</summary>
    public static double[] Linspace(double start, double stop, int num)
    {
        var y = new double[num];
        if (num == 1)
        {
            y[0] = start;
            return y;
        }
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++) y[i] = i * step + start;
        y[^1] = stop;
        return y;
    }

    /// <summary>
    /// diffusers' <c>index_for_timestep</c>: the position of <paramref name="timestep"/> (compared exactly, in float32)
    /// among the current <see cref="Timesteps"/>; when it occurs more than once, the second (diffusers' guard for
    /// starting mid-schedule). A time not in the schedule is an <see cref="ArgumentException"/>.
    /// </summary>
    public int IndexForTimestep(float timestep)
    {
        int first = -1;
        for (int i = 0; i < _timesteps.Length; i++)
        {
            if (_timesteps[i] != timestep) continue;
            if (first >= 0) return i;
            first = i;
        }
        return first >= 0 ? first : throw new ArgumentException(
            $"timestep {timestep:R} is not one of the scheduler's {_timesteps.Length} timesteps (call SetTimesteps with the schedule the trajectory was sampled with)");
    }

    /// <summary>The step indices of a 0-d, [1] or [B] tensor of times (<paramref name="batch"/> copies of a single one).</summary>
    public int[] StepIndices(Tensor timestep, long batch)
    {
        using var scope = NewDisposeScope();
        var values = timestep.detach().to(ScalarType.Float32, CPU).flatten().data<float>().ToArray();
        // A 0-d or one-element time applies to the whole batch (Flow-GRPO passes t.unsqueeze(0)).
        if (values.Length == 1) values = Enumerable.Repeat(values[0], checked((int)batch)).ToArray();
        else if (values.Length != batch) throw new ArgumentException($"{values.Length} timesteps for a batch of {batch}", nameof(timestep));
        return values.Select(IndexForTimestep).ToArray();
    }

    /// <summary>A [B, 1, ...] tensor (rank <paramref name="rank"/>) of the values at <paramref name="indices"/>, on <paramref name="device"/> in <paramref name="dtype"/>.</summary>
    internal Tensor SigmasAt(IEnumerable<int> indices, int rank, ScalarType dtype, Device device)
    {
        var values = indices.Select(i => _sigmas[i]).ToArray();
        var shape = new long[rank];
        Array.Fill(shape, 1L);
        shape[0] = values.Length;
        using var t = tensor(values, dtype: ScalarType.Float32);
        return t.reshape(shape).to(dtype, device);
    }

    /// <summary>
    /// diffusers' <c>scale_noise</c>, the forward process: <c>σ·noise + (1 - σ)·sample</c> with each item's σ found from
    /// <paramref name="timestep"/> ([B] or 0-d) among the current timesteps, in the sample's dtype.
    /// </summary>
    public Tensor ScaleNoise(Tensor sample, Tensor timestep, Tensor noise)
    {
        using var scope = NewDisposeScope();
        var sigma = SigmasAt(StepIndices(timestep, sample.shape[0]), (int)sample.dim(), sample.dtype, sample.device);
        return (sigma * noise + (1.0 - sigma) * sample).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// diffusers' Euler <c>step</c>: <c>sample + (σ_next - σ)·modelOutput</c> at the time(s) <paramref name="timestep"/>
    /// (0-d or [B]), computed in float32 (float64 for a float64 sample) and returned in the model output's dtype.
    /// </summary>
    public Tensor Step(Tensor modelOutput, Tensor timestep, Tensor sample)
    {
        if (NumInferenceSteps == 0) throw new InvalidOperationException("call SetTimesteps before Step");
        using var scope = NewDisposeScope();
        var compute = sample.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var index = StepIndices(timestep, sample.shape[0]);
        int rank = (int)sample.dim();
        // σ_next - σ is taken in float32 as diffusers does, then widened.
        var dt = SigmasAt(index.Select(i => i + 1), rank, ScalarType.Float32, sample.device) - SigmasAt(index, rank, ScalarType.Float32, sample.device);
        var prev = sample.to(compute) + dt.to(compute) * modelOutput;
        return prev.to(modelOutput.dtype).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _timestepsTensor.Dispose();
        _sigmasTensor.Dispose();
    }
}
