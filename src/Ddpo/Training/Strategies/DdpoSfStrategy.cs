using Ddpo.Config;
using Ddpo.Policies;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>DDPO-SF: REINFORCE on per-prompt (or global) advantages, one optimizer step per sampling round.</summary>
internal sealed class DdpoSfStrategy(IDiffusionPolicy policy, DdpoConfig config, ReferencePolicy? reference, PerPromptStatTracker? tracker)
    : TransitionStrategy(policy, config, reference)
{
    /// <inheritdoc />
    public override bool OneStepPerEpoch => true;

    /// <inheritdoc />
    public override UpdateTargets Targets(EpochSamples samples) => DdpoAdvantages(samples, tracker);

    /// <inheritdoc />
    protected override MicroLoss Objective(Tensor logProb, Tensor oldLogProb, Tensor advantages) =>
        new(PolicyLoss.DdpoSf(logProb, advantages, Config.Train.AdvClipMax));
}
