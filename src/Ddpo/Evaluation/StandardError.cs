namespace Ddpo.Evaluation;

/// <summary>The one definition of the standard error of a mean used in metrics, reports and <c>ddpo eval</c>.</summary>
internal static class StandardError
{
    /// <summary>
    /// s / sqrt(n), with s the sample standard deviation (n - 1 in the denominator, numpy's <c>std(ddof=1)</c>,
    /// scipy's <c>sem</c>); NaN for fewer than 2 values. Callers pass finite values only.
    /// </summary>
    public static double OfMean(IReadOnlyList<double> values)
    {
        int n = values.Count;
        if (n < 2) return double.NaN;
        double mean = values.Average();
        double sumSquares = values.Sum(x => (x - mean) * (x - mean));
        return Math.Sqrt(sumSquares / (n - 1)) / Math.Sqrt(n);
    }
}
