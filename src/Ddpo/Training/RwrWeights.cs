namespace Ddpo.Training;

/// <summary>Sample weights for the reward-weighted regression baselines (jannerm/ddpo).</summary>
public static class RwrWeights
{
    /// <summary>softmax(r / T) · N: positive weights averaging 1, larger for larger rewards.</summary>
    public static float[] Softmax(IReadOnlyList<float> rewards, double temperature)
    {
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be > 0");
        if (rewards.Count == 0) return [];
        double max = rewards.Max(r => (double)r);
        var e = rewards.Select(r => Math.Exp((r - max) / temperature)).ToArray();
        double sum = e.Sum();
        return e.Select(v => (float)(v / sum * rewards.Count)).ToArray();
    }

    /// <summary>
    /// 1 for samples whose reward is at least the <paramref name="percentile"/>-th percentile of the batch
    /// (linear interpolation, as numpy's default), 0 otherwise.
    /// </summary>
    public static float[] Sparse(IReadOnlyList<float> rewards, double percentile)
    {
        if (!(percentile is >= 0 and <= 100)) throw new ArgumentOutOfRangeException(nameof(percentile), percentile, "percentile must be in [0, 100]");
        if (rewards.Count == 0) return [];
        double threshold = Percentile(rewards, percentile);
        return rewards.Select(r => r >= threshold ? 1f : 0f).ToArray();
    }

    /// <summary>The <paramref name="percentile"/>-th percentile with linear interpolation between order statistics (numpy's default).</summary>
    public static double Percentile(IReadOnlyList<float> values, double percentile)
    {
        var sorted = values.Select(v => (double)v).Order().ToArray();
        double pos = percentile / 100.0 * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }
}
