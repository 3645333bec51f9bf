using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// A sampler seen as a policy: the schedule of a run of steps and one step from the denoiser's output with an exact
/// Gaussian log-probability. DDIM with eta (<see cref="DdimSampler"/>) is one; a flow-matching SDE is another. A model
/// family's policy owns one and calls it the same way when sampling (drawing the next sample) and when training
/// (re-evaluating a recorded one).
/// </summary>
internal interface IStepSampler
{
    /// <summary>
    /// Prepares <paramref name="numSteps"/> steps and returns their times, noisiest first, as the values a trajectory
    /// records per step and <see cref="Step"/> takes back (DDIM: int64 timesteps; a flow model: its sigmas).
    /// </summary>
    Tensor Schedule(int numSteps);

    /// <summary>
    /// How many of the <paramref name="numSteps"/> steps, from the first, are stochastic (positive variance): only
    /// these have a log-probability, so only these are actions to train.
    /// </summary>
    int StochasticSteps(int numSteps);

    /// <summary>
    /// One step from <paramref name="sample"/> at <paramref name="time"/> (0-d or [B], values of <see cref="Schedule"/>)
    /// given the denoiser's output, with noise level <paramref name="noiseLevel"/> (DDIM's eta; 0: deterministic).
    /// With <paramref name="next"/> null the next sample is <c>mean + std * noise</c>; otherwise the log-probability
    /// of the given <paramref name="next"/> is computed. Gradients flow from the model output when enabled.
    /// </summary>
    Transition Step(Tensor modelOutput, Tensor time, Tensor sample, double noiseLevel, Tensor? noise = null, Tensor? next = null);
}
