using Ddpo.Config;
using Ddpo.Rewards;

namespace Ddpo.Evaluation;

/// <summary>
/// A reward an evaluation scores with and the rows it gives: its own and, for a weighted sum, each component's
/// unweighted reward, read from the sum's details so that every component model runs once per batch.
/// </summary>
/// <param name="Name">The row name of the reward itself (<c>reward_fn</c>, e.g. <c>weighted</c>, or a registry name).</param>
/// <param name="Reward">The reward.</param>
/// <param name="Components">Row name and detail key of each component (empty unless <paramref name="Reward"/> is a <see cref="WeightedSumReward"/>).</param>
internal sealed record EvaluationScorer(string Name, IRewardFunction Reward, IReadOnlyList<(string Name, string DetailKey)> Components)
{
    /// <summary>Every row name this scorer fills: its own, then its components'.</summary>
    public IEnumerable<string> RowNames => Components.Select(c => c.Name).Prepend(Name);

    /// <summary>
    /// A scorer for <paramref name="reward"/> under <paramref name="name"/>; a weighted sum's components are named by
    /// <paramref name="componentNames"/> (its config keys), which <see cref="RewardRegistry.Create(string, IReadOnlyDictionary{string, double})"/>
    /// orders ordinally.
    /// </summary>
    public static EvaluationScorer Of(string name, IRewardFunction reward, IReadOnlyCollection<string>? componentNames = null)
    {
        if (reward is not WeightedSumReward weighted) return new EvaluationScorer(name, reward, []);
        var names = (componentNames ?? weighted.Components.Select(c => c.Reward.Name).ToArray()).Order(StringComparer.Ordinal).ToArray();
        if (names.Length != weighted.Components.Count)
        {
            throw new ArgumentException($"{name}: {names.Length} component names for {weighted.Components.Count} components");
        }
        return new EvaluationScorer(name, reward, names.Zip(weighted.Components, (n, c) => (n, c.Reward.Name)).ToArray());
    }

    /// <summary>
    /// The rewards <c>ddpo eval</c> scores with by default: the run's <c>reward_fn</c> (whose weighted components become
    /// rows of their own), then each <c>watch_rewards</c> name not already a row.
    /// </summary>
    public static IReadOnlyList<string> DefaultRewardNames(DdpoConfig config)
    {
        var rows = new HashSet<string>(StringComparer.Ordinal) { config.RewardFn };
        if (config.RewardFn == DdpoConfig.WeightedRewardName) rows.UnionWith(config.Rewards.Keys);
        var names = new List<string> { config.RewardFn };
        foreach (var watch in config.WatchRewardNames)
        {
            if (rows.Add(watch)) names.Add(watch);
        }
        return names;
    }
}
