using Ddpo.Base;
using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// What the flow-matching samplers share behind <see cref="IStepSampler"/>: the schedule of a
/// <see cref="FlowMatchEulerDiscreteScheduler"/> (SD3's <c>set_timesteps(n)</c>, or FLUX's
/// <c>sigmas = linspace(1, 1/n, n)</c> with <see cref="Mu"/> under dynamic shifting), the mapping of a time back to
/// its sigma and the next one (diffusers' <c>index_for_timestep</c>), drawing or taking the next sample, and the
/// step's Gaussian log-probability averaged over the non-batch dimensions (Flow-GRPO's formula). A subclass gives the
/// step's mean and standard deviation. The math runs in float32 (float64 for a float64 sample), as Flow-GRPO's
/// <c>sde_step_with_logprob</c> upcasts; a drawn sample is rounded to the sample's dtype before it is scored, so that
/// re-scoring the stored trajectory sees the same values (Flow-Factory's round trip). With noise level 0 the step
/// is Euler's and, like DDIM with eta = 0, its log-probability is undefined (the formula with std 0: NaN or infinite).
/// </summary>
internal abstract class FlowSampler(FlowMatchEulerDiscreteScheduler scheduler, double? mu) : IStepSampler
{
    /// <summary>The scheduler whose sigmas are stepped.</summary>
    public FlowMatchEulerDiscreteScheduler Scheduler => scheduler;

    /// <summary>The dynamic shift (FLUX, from the image size); null for a static shift (SD3).</summary>
    public double? Mu => mu;

    /// <summary>Which step this is.</summary>
    public abstract FlowSdeType SdeType { get; }

    /// <summary>
    /// Sets the scheduler's <paramref name="numSteps"/> steps and returns its timesteps (σ·1000, float32), the times
    /// the transformer takes and a trajectory records.
    /// </summary>
    public Tensor Schedule(int numSteps)
    {
        if (numSteps < 1) throw new ConfigException($"sample.num_steps must be at least 1, got {numSteps}");
        if (scheduler.Config.UseDynamicShifting)
        {
            if (mu is null) throw new InvalidOperationException("the scheduler shifts dynamically (FLUX): give the sampler mu = CalculateShift(image sequence length)");
            // FluxPipeline's own sigmas.
            scheduler.SetTimesteps(numSteps, mu, FlowMatchEulerDiscreteScheduler.Linspace(1.0, 1.0 / numSteps, numSteps));
        }
        else
        {
            scheduler.SetTimesteps(numSteps, mu);
        }
        return scheduler.Timesteps.clone();
    }

    /// <inheritdoc />
    public int StochasticSteps(int numSteps)
    {
        if (scheduler.NumInferenceSteps != numSteps) Schedule(numSteps).Dispose();
        var s = scheduler.SigmaValues;
        int count = 0;
        while (count < numSteps && IsStochastic(s[count], s[count + 1])) count++;
        if (count == 0)
        {
            throw new ConfigException($"the {FlowSamplers.NameOf(SdeType)} sampler with sample.num_steps = {numSteps} has no stochastic step to train on" +
                (SdeType == FlowSdeType.Ode ? " (the ODE is deterministic: use flow_sde, dance_sde or cps to train)" : " (use more steps)"));
        }
        return count;
    }

    /// <summary>Whether the step from <paramref name="sigma"/> to <paramref name="sigmaNext"/> has positive variance at a positive noise level.</summary>
    protected abstract bool IsStochastic(double sigma, double sigmaNext);

    /// <summary>
    /// The step's mean and standard deviation (broadcastable, [B, 1, ...]) from velocity <paramref name="v"/> at
    /// <paramref name="x"/>, with σ, σ_next and dt = σ_next - σ as [B, 1, ...] tensors in the compute dtype.
    /// </summary>
    protected abstract (Tensor Mean, Tensor Std) MeanAndStd(Tensor v, Tensor x, Tensor sigma, Tensor sigmaNext, Tensor dt, double noiseLevel);

    /// <summary>The log-probability of <paramref name="next"/> (detached) per batch item; Flow-GRPO's Gaussian, mean over the non-batch dimensions.</summary>
    protected virtual Tensor LogProb(Tensor next, Tensor mean, Tensor std) => GaussianLogProb(next, mean, std);

    /// <summary>
    /// <c>-(x - mean)² / (2 std²) - log std - log √(2π)</c>, averaged over all but the first dimension.
    /// </summary>
    public static Tensor GaussianLogProb(Tensor next, Tensor mean, Tensor std)
    {
        using var scope = NewDisposeScope();
        var lp = -(next - mean).pow(2) / (2 * std.pow(2)) - std.log() - Math.Log(Math.Sqrt(2 * Math.PI));
        return MeanOverItem(lp).MoveToOuterDisposeScope();
    }

    /// <summary>The mean over all dimensions but the batch one.</summary>
    protected static Tensor MeanOverItem(Tensor t) => t.mean(Enumerable.Range(1, (int)t.dim() - 1).Select(i => (long)i).ToArray());

    /// <inheritdoc />
    public Transition Step(Tensor modelOutput, Tensor time, Tensor sample, double noiseLevel, Tensor? noise = null, Tensor? next = null)
    {
        if (scheduler.NumInferenceSteps == 0) throw new InvalidOperationException("call Schedule before Step");
        if (!(noiseLevel >= 0) || double.IsInfinity(noiseLevel)) throw new ArgumentException($"the noise level must be finite and >= 0, got {noiseLevel}", nameof(noiseLevel));
        using var scope = NewDisposeScope();
        var compute = sample.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var device = sample.device;
        int rank = (int)sample.dim();
        var index = scheduler.StepIndices(time, sample.shape[0]);
        var sigma = scheduler.SigmasAt(index, rank, compute, device);
        var sigmaNext = scheduler.SigmasAt(index.Select(i => i + 1), rank, compute, device);
        var dt = sigmaNext - sigma;
        var x = sample.to(compute);
        var (mean, std) = MeanAndStd(modelOutput.to(compute, device), x, sigma, sigmaNext, dt, noiseLevel);

        Tensor taken;
        if (next is null)
        {
            var z = noise?.to(compute, device) ?? randn(sample.shape, dtype: compute, device: device);
            taken = (mean + std * z).to(sample.dtype).to(compute);
        }
        else
        {
            taken = next.to(compute, device);
        }
        var logProb = LogProb(taken.detach(), mean, std);
        return new Transition(
            taken.to(sample.dtype).MoveToOuterDisposeScope(),
            logProb.MoveToOuterDisposeScope(),
            mean.MoveToOuterDisposeScope(),
            std.MoveToOuterDisposeScope());
    }
}
