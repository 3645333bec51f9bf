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
        if (Config.RewardMix == DdpoConfig.AdvantageAggregation) return AggregatedAdvantages(groups, samples);
        var result = GroupAdvantages.Compute(groups, samples.Rewards);
        return new UpdateTargets(null, result.Advantages, new Dictionary<string, object?>
        {
            ["groups"] = result.Groups,
            ["zero_std_groups"] = result.ZeroStdGroups,
        });
    }

    private UpdateTargets AggregatedAdvantages(long[] groups, EpochSamples samples)
    {
        var components = Config.Rewards.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv =>
            (kv.Key, kv.Value, samples.RewardDetails.TryGetValue(kv.Key, out var r) ? r
                : throw new InvalidOperationException($"reward_mix = \"{DdpoConfig.AdvantageAggregation}\": the epoch's rewards carry no component '{kv.Key}'")));
        var (advantages, result) = GroupAdvantages.Aggregate(groups, components.ToList());
        var metrics = result.ToDictionary(kv => $"zero_std_groups_{kv.Key}", kv => (object?)kv.Value.ZeroStdGroups);
        metrics["groups"] = result.Values.First().Groups;
        metrics["zero_std_groups"] = GroupAdvantages.Compute(groups, advantages).ZeroStdGroups; // groups no component tells apart
        return new UpdateTargets(null, advantages, metrics);
    }

    /// <inheritdoc />
    protected override MicroLoss Objective(Tensor logProb, Tensor oldLogProb, Tensor advantages) => DdpoIsStrategy.Clipped(Config, logProb, oldLogProb, advantages);
}
