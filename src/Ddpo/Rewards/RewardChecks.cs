namespace Ddpo.Rewards;

/// <summary>Which rewards are usable: a mask of finite values and how many are NaN or infinite.</summary>
internal sealed record FiniteMask(bool[] IsFinite, int NonFiniteCount)
{
    /// <summary>Indices of the finite rewards, ascending.</summary>
    public int[] FiniteIndices => Enumerable.Range(0, IsFinite.Length).Where(i => IsFinite[i]).ToArray();
}

/// <summary>Checks on reward values before they are used for advantages.</summary>
internal static class RewardChecks
{
    /// <summary>Marks each reward finite or not (NaN, +inf, -inf), so the trainer can drop those samples and report the count.</summary>
    public static FiniteMask Finite(IReadOnlyList<float> rewards)
    {
        var mask = new bool[rewards.Count];
        int bad = 0;
        for (int i = 0; i < mask.Length; i++)
        {
            mask[i] = float.IsFinite(rewards[i]);
            if (!mask[i]) bad++;
        }
        return new FiniteMask(mask, bad);
    }
}
