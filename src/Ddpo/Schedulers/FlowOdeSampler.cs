using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// The deterministic flow step, diffusers' Euler <c>x + (σ_next - σ)·v</c> (Flow-Factory's <c>"ODE"</c>), for
/// evaluation or plain sampling: the noise level and the noise are not used, the std is 0 and, as for DDIM with
/// eta = 0, the log-probability is undefined (NaN). It has no stochastic step, so it cannot be trained with
/// (<see cref="IStepSampler.StochasticSteps"/> says so).
/// </summary>
internal sealed class FlowOdeSampler(FlowMatchEulerDiscreteScheduler scheduler, double? mu = null) : FlowSampler(scheduler, mu)
{
    /// <inheritdoc />
    public override FlowSdeType SdeType => FlowSdeType.Ode;

    /// <inheritdoc />
    protected override bool IsStochastic(double sigma, double sigmaNext) => false;

    /// <inheritdoc />
    protected override (Tensor Mean, Tensor Std) MeanAndStd(Tensor v, Tensor x, Tensor sigma, Tensor sigmaNext, Tensor dt, double noiseLevel) =>
        (x + v * dt, zeros_like(sigma));
}
