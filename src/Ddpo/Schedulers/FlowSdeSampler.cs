using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// Flow-GRPO's SDE (<c>sde_step_with_logprob</c>, yifan123/flow_grpo@ac4c86e): the reverse SDE of the flow with the
/// marginals of the ODE, <c>std_dev_t = √(σ / (1 - σ')) · noiseLevel</c> where σ' is σ except at σ = 1, where it is
/// <c>sigmas[1]</c> (Flow-GRPO's guard against dividing by zero), the step
/// <c>x·(1 + std_dev_t²·dt / (2σ)) + v·(1 + std_dev_t²·(1 - σ) / (2σ))·dt</c> and noise <c>std_dev_t·√(-dt)</c>.
/// Every step, the last one (to σ = 0) included, is stochastic. Flow-Factory's "Flow-SDE" is the same step.
/// </summary>
internal sealed class FlowSdeSampler(FlowMatchEulerDiscreteScheduler scheduler, double? mu = null) : FlowSampler(scheduler, mu)
{
    /// <inheritdoc />
    public override FlowSdeType SdeType => FlowSdeType.FlowSde;

    /// <inheritdoc />
    protected override bool IsStochastic(double sigma, double sigmaNext) => sigma > sigmaNext && sigma > 0;

    /// <summary>Flow-GRPO's <c>std_dev_t</c> ([B, 1, ...]): the diffusion coefficient before the √(-dt) of the step.</summary>
    public Tensor StdDevT(Tensor sigma, double noiseLevel)
    {
        using var scope = NewDisposeScope();
        double sigmaMax = Scheduler.SigmaValues[1];
        var denominator = 1 - where(sigma == 1.0, full_like(sigma, sigmaMax), sigma);
        return ((sigma / denominator).sqrt() * noiseLevel).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override (Tensor Mean, Tensor Std) MeanAndStd(Tensor v, Tensor x, Tensor sigma, Tensor sigmaNext, Tensor dt, double noiseLevel)
    {
        var stdDevT = StdDevT(sigma, noiseLevel);
        var variance = stdDevT.pow(2);
        var mean = x * (1 + variance / (2 * sigma) * dt) + v * (1 + variance * (1 - sigma) / (2 * sigma)) * dt;
        return (mean, stdDevT * (-dt).sqrt());
    }
}
