using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// Flow-Factory's CPS, the coefficients-preserving sampler (X-GenGroup/Flow-Factory@a0b2bc5a,
/// <c>dynamics_type = "CPS"</c>): with <c>x0 = x - σ·v</c> and <c>x1 = x + (1 - σ)·v</c>, std
/// <c>σ_next·sin(noiseLevel·π/2)</c> and mean <c>(1 - σ_next)·x0 + √(σ_next² - std²)·x1</c>, so the next sample keeps the
/// flow's coefficients of data and noise. The last step (to σ = 0) has std 0: deterministic, not an action.
/// The log-probability is the exact Gaussian one by default; Flow-Factory trains with <c>-mean((x - mean)²)</c>,
/// the Gaussian's quadratic term without the 1/(2 std²) scale and the normaliser, which
/// <paramref name="flowFactoryLogProb"/> selects (its ratios differ from the Gaussian's).
/// </summary>
internal sealed class CpsSampler(FlowMatchEulerDiscreteScheduler scheduler, double? mu = null, bool flowFactoryLogProb = false) : FlowSampler(scheduler, mu)
{
    /// <inheritdoc />
    public override FlowSdeType SdeType => FlowSdeType.Cps;

    /// <summary>Whether <see cref="IStepSampler.Step"/> returns Flow-Factory's unnormalised log-probability.</summary>
    public bool FlowFactoryLogProb => flowFactoryLogProb;

    /// <inheritdoc />
    protected override bool IsStochastic(double sigma, double sigmaNext) => sigmaNext > 0 && sigma > sigmaNext;

    /// <inheritdoc />
    protected override (Tensor Mean, Tensor Std) MeanAndStd(Tensor v, Tensor x, Tensor sigma, Tensor sigmaNext, Tensor dt, double noiseLevel)
    {
        var std = sigmaNext * Math.Sin(noiseLevel * Math.PI / 2);
        var x0 = x - sigma * v;
        var x1 = x + v * (1 - sigma);
        var mean = x0 * (1 - sigmaNext) + x1 * (sigmaNext.pow(2) - std.pow(2)).sqrt();
        return (mean, std);
    }

    /// <inheritdoc />
    protected override Tensor LogProb(Tensor next, Tensor mean, Tensor std) =>
        flowFactoryLogProb ? MeanOverItem(-(next - mean).pow(2)) : GaussianLogProb(next, mean, std);
}
