namespace Ddpo.Training;

/// <summary>An epoch's group-relative advantages and what the groups looked like.</summary>
/// <param name="Advantages">One advantage per sample, in input order.</param>
/// <param name="Groups">Number of groups.</param>
/// <param name="ZeroStdGroups">Groups whose rewards were all equal (their advantages are 0: they add no policy gradient).</param>
internal sealed record GroupAdvantageResult(float[] Advantages, int Groups, int ZeroStdGroups);

/// <summary>
/// GRPO's advantages (DeepSeekMath's group-relative normalisation, as Flow-GRPO applies it to images): each sample's
/// reward relative to the other samples of its group, <c>(r - group mean) / (group std + eps)</c> with the
/// population std. A group is identified by its id, not by its prompt (two groups may share a prompt), and only the
/// ids and rewards are needed, so the same call serves one process or the gathered epoch of many: give it every
/// sample of a group, with ids unique over all processes (<see cref="ConsecutiveGroups"/> with a per-process first id).
/// Clipping to <c>train.adv_clip_max</c> happens in the loss, as for DDPO-IS.
/// </summary>
internal static class GroupAdvantages
{
    /// <summary>Added to the group std before dividing (Flow-GRPO's 1e-4).</summary>
    public const double StdEpsilon = 1e-4;

    /// <summary>Advantages of <paramref name="rewards"/> within the groups <paramref name="groups"/> (same length, finite rewards).</summary>
    public static GroupAdvantageResult Compute(IReadOnlyList<long> groups, IReadOnlyList<float> rewards, double epsilon = StdEpsilon)
    {
        if (groups.Count != rewards.Count)
        {
            throw new ArgumentException($"{groups.Count} group ids but {rewards.Count} rewards");
        }
        var members = new Dictionary<long, List<int>>();
        for (int i = 0; i < rewards.Count; i++)
        {
            if (!float.IsFinite(rewards[i]))
            {
                throw new ArgumentException($"reward {i} (group {groups[i]}) is {rewards[i]}; drop non-finite rewards first (RewardChecks.Finite)");
            }
            if (!members.TryGetValue(groups[i], out var list)) members[groups[i]] = list = [];
            list.Add(i);
        }
        var advantages = new float[rewards.Count];
        int zeroStd = 0;
        foreach (var indices in members.Values)
        {
            float first = rewards[indices[0]];
            if (indices.All(i => rewards[i] == first))
            {
                zeroStd++; // advantages stay 0: nothing to learn from a group that cannot be told apart
                continue;
            }
            var (mean, std) = PerPromptStatTracker.MeanStd(indices.Select(i => rewards[i]).ToArray());
            foreach (int i in indices)
            {
                advantages[i] = (float)((rewards[i] - mean) / (std + epsilon));
            }
        }
        return new GroupAdvantageResult(advantages, members.Count, zeroStd);
    }

    /// <summary>
    /// MixGRPO's <c>advantage_aggr</c> (tulvgengenr/MixGRPO <c>fastvideo/train_grpo_flux.py</c> at 75c797f): each
    /// component's rewards normalised within the groups by <see cref="Compute"/>, then summed with the weights (no
    /// second normalisation). Departure: the group std is our GRPO's population std + 1e-4 (MixGRPO: the sample std +
    /// 1e-8), so that a single component of weight 1 gives exactly GRPO's advantages. Returns the advantages and each
    /// component's group statistics by name.
    /// </summary>
    public static (float[] Advantages, IReadOnlyDictionary<string, GroupAdvantageResult> Components) Aggregate(
        IReadOnlyList<long> groups, IReadOnlyList<(string Name, double Weight, float[] Rewards)> components)
    {
        if (components.Count == 0) throw new ArgumentException("advantage aggregation needs at least one reward component");
        var total = new float[groups.Count];
        var results = new Dictionary<string, GroupAdvantageResult>(StringComparer.Ordinal);
        foreach (var (name, weight, rewards) in components)
        {
            var result = Compute(groups, rewards);
            for (int i = 0; i < total.Length; i++) total[i] += (float)(weight * result.Advantages[i]);
            results[name] = result;
        }
        return (total, results);
    }

    /// <summary>
    /// The group ids of <paramref name="count"/> samples drawn as <c>sample.group_size</c> repeats of each prompt in a
    /// row: sample i belongs to group <paramref name="firstGroup"/> + i / <paramref name="groupSize"/>.
    /// </summary>
    public static long[] ConsecutiveGroups(int count, int groupSize, long firstGroup = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        return Enumerable.Range(0, count).Select(i => firstGroup + i / groupSize).ToArray();
    }
}
