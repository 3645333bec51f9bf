using Ddpo.Config;

namespace Ddpo.Training;

/// <summary>
/// The advantages of a policy-gradient epoch (DDPO-IS, DDPO-SF, GRPO) from its finite rewards, with the metrics they
/// add to the epoch's line: GRPO's group-relative ones (<c>groups</c>, <c>zero_std_groups</c>), or DDPO's per-prompt
/// (the stat tracker's buffers) or global normalisation.
/// </summary>
internal static class EpochAdvantages
{
    /// <summary>Advantages for <paramref name="samples"/>, in their order, and the metrics to log.</summary>
    public static (float[] Advantages, IReadOnlyDictionary<string, object?> Metrics) Compute(
        DdpoConfig config, EpochSamples samples, PerPromptStatTracker? tracker)
    {
        if (config.Algorithm == TrainingAlgorithm.Grpo)
        {
            var groups = samples.Groups
                ?? throw new InvalidOperationException("algorithm = \"grpo\": the epoch's samples carry no group ids");
            var result = GroupAdvantages.Compute(groups, samples.Rewards);
            return (result.Advantages, new Dictionary<string, object?>
            {
                ["groups"] = result.Groups,
                ["zero_std_groups"] = result.ZeroStdGroups,
            });
        }
        var advantages = tracker is not null
            ? tracker.Update(samples.Prompts, samples.Rewards)
            : GlobalNormalizer.Normalize(samples.Rewards);
        return (advantages, new Dictionary<string, object?>());
    }
}
