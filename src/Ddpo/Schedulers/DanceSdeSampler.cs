using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// Flow-Factory's Dance-SDE (X-GenGroup/Flow-Factory@a0b2bc5a, <c>FlowMatchEulerDiscreteSDEScheduler.step</c>,
/// <c>dynamics_type = "Dance-SDE"</c>, DanceGRPO's step): with <c>x0 = x - σ·v</c>, the mean
/// <c>x + (v + ½·noiseLevel²·(x - (1 - σ)·x0) / σ²)·dt</c> and noise <c>noiseLevel·√(-dt)</c>; every step is stochastic.
/// </summary>
internal sealed class DanceSdeSampler(FlowMatchEulerDiscreteScheduler scheduler, double? mu = null) : FlowSampler(scheduler, mu)
{
    /// <inheritdoc />
    public override FlowSdeType SdeType => FlowSdeType.DanceSde;

    /// <inheritdoc />
    protected override bool IsStochastic(double sigma, double sigmaNext) => sigma > sigmaNext && sigma > 0;

    /// <inheritdoc />
    protected override (Tensor Mean, Tensor Std) MeanAndStd(Tensor v, Tensor x, Tensor sigma, Tensor sigmaNext, Tensor dt, double noiseLevel)
    {
        var x0 = x - sigma * v;
        var logTerm = 0.5 * noiseLevel * noiseLevel * (x - x0 * (1 - sigma)) / sigma.pow(2);
        var mean = x + (v + logTerm) * dt;
        return (mean, noiseLevel * (-dt).sqrt());
    }
}
