using Ddpo.Base;
using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// DDIM with eta as a stochastic policy (DDPO): <see cref="DdimScheduler"/>'s step, with what its last step steps to
/// fixed for the run (<see cref="DdimFinalStep"/>: diffusers' for plain sampling, ddpo-pytorch's or diffusers' in
/// training, <c>sample.final_step</c>).
/// </summary>
internal sealed class DdimSampler(DdimScheduler scheduler, DdimFinalStep finalStep) : IStepSampler
{
    /// <summary>The scheduler stepped.</summary>
    public DdimScheduler Scheduler => scheduler;

    /// <summary>What the last step steps to.</summary>
    public DdimFinalStep FinalStep => finalStep;

    /// <inheritdoc />
    public Tensor Schedule(int numSteps)
    {
        scheduler.SetTimesteps(numSteps);
        return tensor(scheduler.Timesteps, dtype: ScalarType.Int64);
    }

    /// <inheritdoc />
    public int StochasticSteps(int numSteps)
    {
        if (scheduler.NumInferenceSteps != numSteps) scheduler.SetTimesteps(numSteps);
        int stochastic = scheduler.StochasticStepCount(finalStep);
        if (stochastic == 0)
        {
            throw new ConfigException($"sample.final_step = \"{finalStep.ToConfigName()}\" with sample.num_steps = {numSteps} " +
                $"leaves no stochastic step to train on: the only step (timestep {scheduler.Timesteps[0]}) has zero variance " +
                "(with set_alpha_to_one = true diffusers' last step goes to alpha_cumprod 1; with steps_offset = 0 the last timestep is 0); " +
                "use more steps" + (finalStep == DdimFinalStep.Diffusers ? " or sample.final_step = \"ddpo\"" : ""));
        }
        return stochastic;
    }

    /// <inheritdoc />
    public Transition Step(Tensor modelOutput, Tensor time, Tensor sample, double noiseLevel, Tensor? noise = null, Tensor? next = null)
    {
        var r = scheduler.Step(modelOutput, time, sample, noiseLevel, prevSample: next, noise: noise, finalStep: finalStep);
        r.PredOriginalSample.Dispose();
        return new Transition(r.PrevSample, r.LogProb, r.Mean, r.Std);
    }
}
