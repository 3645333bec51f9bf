namespace Ddpo.Reporting;

/// <summary>A run of epochs in which the optimised reward rose while a watch reward fell.</summary>
/// <param name="FromEpoch">First flagged epoch (for the first span: where the watch reward peaks in the first flagged window).</param>
/// <param name="ToEpoch">Last epoch of the last overlapping flagged window.</param>
internal readonly record struct EpochSpan(double FromEpoch, double ToEpoch);

/// <summary>What <see cref="OverOptimisationDetector"/> found for one watch reward.</summary>
/// <param name="WatchReward">The watch reward's name (<c>aesthetic</c> for <c>watch_aesthetic_mean</c>).</param>
/// <param name="Spans">The flagged epochs, merged into spans, in order; never empty.</param>
/// <param name="OptimisedSlope">Slope per epoch of the optimised reward in the first flagged window.</param>
/// <param name="WatchSlope">Slope per epoch of the watch reward in the first flagged window (negative).</param>
/// <param name="WatchSlopeError">Standard error of <paramref name="WatchSlope"/> in that window.</param>
internal sealed record OverOptimisationFinding(string WatchReward, IReadOnlyList<EpochSpan> Spans,
    double OptimisedSlope, double WatchSlope, double WatchSlopeError)
{
    /// <summary>The epoch from which over-optimisation is flagged (start of the first span).</summary>
    public double OnsetEpoch => Spans[0].FromEpoch;
}

/// <summary>
/// Flags over-optimisation: epochs where the optimised reward keeps rising while a watch reward (logged,
/// not optimised) falls.
/// <para>
/// Rule: slide a window over <see cref="Window"/> consecutive logged epochs. In each window where both
/// series are finite, fit a least-squares line against the epoch number to each. The window is flagged
/// when the optimised reward's slope is positive and the watch reward's slope is negative by more than
/// <see cref="Threshold"/> times its standard error (the noise of the fit:
/// <c>sqrt(SSR / (k - 2) / Σ(x - x̄)²)</c>, so a falling watch reward must fall clearly, not just wobble).
/// Flagged windows that overlap are merged into spans. The onset (start of the first span) is the epoch
/// at which the watch reward peaks inside the first flagged window: from there on it falls.
/// </para>
/// </summary>
internal sealed class OverOptimisationDetector
{
    /// <summary>Uses windows of <paramref name="window"/> epochs (at least 3) and a noise threshold of <paramref name="threshold"/> standard errors.</summary>
    public OverOptimisationDetector(int window = 5, double threshold = 2.0)
    {
        if (window < 3) throw new ArgumentOutOfRangeException(nameof(window), window, "the window needs at least 3 epochs to estimate noise");
        if (!(threshold >= 0)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "must be >= 0");
        Window = window;
        Threshold = threshold;
    }

    /// <summary>Number of consecutive logged epochs per window.</summary>
    public int Window { get; }

    /// <summary>How many standard errors the watch reward's fall must exceed.</summary>
    public double Threshold { get; }

    /// <summary>A one-sentence description of the rule, for reports.</summary>
    public string Describe() =>
        $"a window of {Window} consecutive logged epochs is flagged when the least-squares slope of the optimised reward is > 0 " +
        $"and the slope of the watch reward is < 0 by more than {ReportFormat.Num(Threshold)}× its standard error";

    /// <summary>
    /// Checks one watch reward against the optimised reward; null where nothing is flagged (including runs
    /// shorter than <see cref="Window"/> epochs).
    /// </summary>
    /// <param name="watchReward">The watch reward's name, copied into the finding.</param>
    /// <param name="epochs">Epoch numbers, increasing.</param>
    /// <param name="optimised">Optimised reward per epoch (NaN where unknown).</param>
    /// <param name="watch">Watch reward per epoch (NaN where unknown).</param>
    public OverOptimisationFinding? Detect(string watchReward, IReadOnlyList<double> epochs, IReadOnlyList<double> optimised, IReadOnlyList<double> watch)
    {
        if (epochs.Count != optimised.Count || epochs.Count != watch.Count)
        {
            throw new ArgumentException($"epochs ({epochs.Count}), optimised ({optimised.Count}) and watch ({watch.Count}) must have the same length");
        }
        var spans = new List<EpochSpan>();
        (double Opt, double Watch, double WatchSe)? first = null;
        for (int start = 0; start + Window <= epochs.Count; start++)
        {
            var x = Slice(epochs, start);
            var o = Slice(optimised, start);
            var w = Slice(watch, start);
            if (!x.Concat(o).Concat(w).All(double.IsFinite)) continue;
            var (optSlope, _) = Fit(x, o);
            var (watchSlope, watchSe) = Fit(x, w);
            if (!(optSlope > 0 && watchSlope < 0 && -watchSlope > Threshold * watchSe)) continue;
            var from = x[0];
            if (first is null)
            {
                first = (optSlope, watchSlope, watchSe);
                from = x[Array.IndexOf(w, w.Max())];
            }
            var span = new EpochSpan(from, x[^1]);
            if (spans.Count > 0 && span.FromEpoch <= spans[^1].ToEpoch)
            {
                spans[^1] = spans[^1] with { ToEpoch = span.ToEpoch };
            }
            else
            {
                spans.Add(span);
            }
        }
        return first is { } f ? new OverOptimisationFinding(watchReward, spans, f.Opt, f.Watch, f.WatchSe) : null;
    }

    private double[] Slice(IReadOnlyList<double> values, int start) => Enumerable.Range(start, Window).Select(i => values[i]).ToArray();

    /// <summary>Least-squares slope of <paramref name="y"/> on <paramref name="x"/> and its standard error.</summary>
    internal static (double Slope, double StandardError) Fit(double[] x, double[] y)
    {
        double mx = x.Average(), my = y.Average();
        double sxx = 0, sxy = 0;
        for (int i = 0; i < x.Length; i++)
        {
            sxx += (x[i] - mx) * (x[i] - mx);
            sxy += (x[i] - mx) * (y[i] - my);
        }
        if (sxx == 0) return (0, double.PositiveInfinity);
        double slope = sxy / sxx, intercept = my - slope * mx, ssr = 0;
        for (int i = 0; i < x.Length; i++)
        {
            var r = y[i] - (intercept + slope * x[i]);
            ssr += r * r;
        }
        return (slope, Math.Sqrt(ssr / (x.Length - 2) / sxx));
    }
}
