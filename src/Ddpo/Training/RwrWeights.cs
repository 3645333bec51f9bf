namespace Ddpo.Training;

/// <summary>
/// What the reward-weighted regression baselines train on, as jannerm/ddpo defines them: softmax
/// weights over the whole epoch's samples (<c>rwr</c>), or the samples at or above a reward
/// percentile, unweighted (<c>rwr_sparse</c>).
/// </summary>
internal static class RwrWeights
{
    /// <summary>
    /// softmax(rewards · <paramref name="temperature"/>) · N over all <paramref name="rewards"/> (jannerm/ddpo's
    /// <c>softmax_ref(labels, temperature) * len(dataset)</c>): positive weights that average 1, larger for larger
    /// rewards. As in jannerm/ddpo the "temperature" multiplies the rewards (it is an inverse temperature):
    /// larger values give sharper weights, 0 gives equal weights.
    /// </summary>
    public static float[] Softmax(IReadOnlyList<float> rewards, double temperature)
    {
        if (!(temperature >= 0) || double.IsInfinity(temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "rwr.temperature must be a finite number >= 0");
        }
        if (rewards.Count == 0) return [];
        var scaled = rewards.Select(r => r * temperature).ToArray();
        double max = scaled.Max();
        var e = scaled.Select(x => Math.Exp(x - max)).ToArray();
        double sum = e.Sum();
        return e.Select(v => (float)(v / sum * rewards.Count)).ToArray();
    }

    /// <summary>
    /// The indices, in order, of the samples whose reward is at least the <paramref name="percentile"/>-th
    /// percentile of <paramref name="rewards"/> (jannerm/ddpo's <c>Percentile</c> masker:
    /// <c>xs &gt;= np.percentile(xs, q)</c>). Sparse RWR trains on these samples only.
    /// </summary>
    public static long[] AtOrAbovePercentile(IReadOnlyList<float> rewards, double percentile)
    {
        if (!(percentile is >= 0 and <= 100)) throw new ArgumentOutOfRangeException(nameof(percentile), percentile, "rwr.percentile must be in [0, 100]");
        if (rewards.Count == 0) return [];
        double threshold = Percentile(rewards, percentile);
        return Enumerable.Range(0, rewards.Count).Where(i => rewards[i] >= threshold).Select(i => (long)i).ToArray();
    }

    /// <summary>The <paramref name="percentile"/>-th percentile with linear interpolation between order statistics (numpy's default).</summary>
    public static double Percentile(IReadOnlyList<float> values, double percentile)
    {
        if (values.Count == 0) throw new ArgumentException("the percentile of no values is undefined", nameof(values));
        var sorted = values.Select(v => (double)v).Order().ToArray();
        double pos = percentile / 100.0 * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }
}
