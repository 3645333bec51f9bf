using Ddpo.Config;
using Ddpo.Policies;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// DDPO-IS (ddpo-pytorch's default): the clipped importance-sampling objective, PPO-style, on per-prompt (or global)
/// advantages; several optimizer steps per epoch.
/// </summary>
internal sealed class DdpoIsStrategy(IDiffusionPolicy policy, DdpoConfig config, ReferencePolicy? reference, PerPromptStatTracker? tracker)
    : TransitionStrategy(policy, config, reference)
{
    /// <inheritdoc />
    public override UpdateTargets Targets(EpochSamples samples) => DdpoAdvantages(samples, tracker);

    /// <inheritdoc />
    protected override MicroLoss Objective(Tensor logProb, Tensor oldLogProb, Tensor advantages) => Clipped(Config, logProb, oldLogProb, advantages);

    /// <summary>The clipped objective of DDPO-IS and GRPO, with its approximate KL and clip fraction.</summary>
    public static MicroLoss Clipped(DdpoConfig config, Tensor logProb, Tensor oldLogProb, Tensor advantages)
    {
        var (loss, kl, clipFrac) = PolicyLoss.DdpoIs(logProb, oldLogProb, advantages, config.Train.ClipRange, config.Train.AdvClipMax);
        return new MicroLoss(loss, kl, clipFrac);
    }
}
