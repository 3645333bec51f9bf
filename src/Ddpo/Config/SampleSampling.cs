using Ddpo.Policies;

namespace Ddpo.Config;

/// <summary>The one place a run's sampling is read from its <c>[sample]</c> section.</summary>
internal static class SampleSampling
{
    /// <summary>
    /// <c>sample.num_steps</c>, <c>eta</c>, <c>guidance_scale</c>, <c>sde_type</c>, <c>resolution</c> and <c>final_step</c>; for a training epoch
    /// (<paramref name="trainingEpoch"/>) also that epoch's SDE window (<see cref="SdeWindow.At"/>) and the recorded
    /// trajectory. Without it: the fixed-seed images and evaluation, every step stochastic, nothing recorded.
    /// </summary>
    public static SamplingOptions ToSamplingOptions(this SampleConfig sample, int? trainingEpoch = null) => new()
    {
        NumSteps = sample.NumSteps,
        Eta = sample.Eta,
        GuidanceScale = sample.GuidanceScale,
        FinalStep = sample.FinalStep,
        SdeType = sample.SdeType == "auto" ? null : sample.SdeType,
        Height = sample.Resolution > 0 ? sample.Resolution : null,
        Width = sample.Resolution > 0 ? sample.Resolution : null,
        RecordTrajectory = trainingEpoch is not null,
        SdeWindow = trainingEpoch is { } epoch ? SdeWindow.At(sample, epoch) : null,
    };
}
