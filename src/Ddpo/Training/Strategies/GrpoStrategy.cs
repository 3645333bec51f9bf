using Ddpo.Config;
using Ddpo.Policies;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// GRPO (Flow-GRPO, DanceGRPO): the clipped objective of DDPO-IS on group-relative advantages, each sample's reward
/// normalised within the <c>sample.group_size</c> images of its prompt (<see cref="GroupAdvantages"/>).
/// </summary>
internal sealed class GrpoStrategy(IDiffusionPolicy policy, DdpoConfig config, ReferencePolicy? reference)
    : TransitionStrategy(policy, config, reference)
{
    /// <inheritdoc />
    public override UpdateTargets Targets(EpochSamples samples)
    {
        var groups = samples.Groups
            ?? throw new InvalidOperationException("algorithm = \"grpo\": the epoch's samples carry no group ids");
        var result = GroupAdvantages.Compute(groups, samples.Rewards);
        return new UpdateTargets(null, result.Advantages, new Dictionary<string, object?>
        {
            ["groups"] = result.Groups,
            ["zero_std_groups"] = result.ZeroStdGroups,
        });
    }

    /// <inheritdoc />
    protected override MicroLoss Objective(Tensor logProb, Tensor oldLogProb, Tensor advantages) => DdpoIsStrategy.Clipped(Config, logProb, oldLogProb, advantages);
}
