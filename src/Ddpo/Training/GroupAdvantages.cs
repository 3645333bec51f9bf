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
    /// The group ids of <paramref name="count"/> samples drawn as <c>sample.group_size</c> repeats of each prompt in a
    /// row: sample i belongs to group <paramref name="firstGroup"/> + i / <paramref name="groupSize"/>.
    /// </summary>
    public static long[] ConsecutiveGroups(int count, int groupSize, long firstGroup = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        return Enumerable.Range(0, count).Select(i => firstGroup + i / groupSize).ToArray();
    }
}
