using Ddpo.Reporting;
using Xunit;

namespace Ddpo.Tests.Reporting;

public sealed class OverOptimisationDetectorTests
{
    private static double[] Epochs(int n) => Enumerable.Range(0, n).Select(i => (double)i).ToArray();

    private static double[] Rising(int n) => Enumerable.Range(0, n).Select(i => 1 + 0.1 * i).ToArray();

    [Fact]
    public void FlagsAClearFallFromTheWatchRewardsPeak()
    {
        // Watch rises to epoch 4, then falls by 0.3/epoch with a small alternating wobble.
        var watch = Enumerable.Range(0, 12).Select(i => (i <= 4 ? 5 + 0.1 * i : 5.4 - 0.3 * (i - 4)) + (i % 2 == 0 ? 0.01 : -0.01)).ToArray();

        var f = new OverOptimisationDetector(window: 5).Detect("aesthetic", Epochs(12), Rising(12), watch);

        Assert.NotNull(f);
        Assert.Equal("aesthetic", f.WatchReward);
        Assert.Equal(4, f.OnsetEpoch);
        Assert.Equal([new EpochSpan(4, 11)], f.Spans);
        Assert.True(f.OptimisedSlope > 0);
        Assert.True(f.WatchSlope < -f.WatchSlopeError * 2);
    }

    [Fact]
    public void SlopeAndStandardErrorAreTheLeastSquaresFit()
    {
        // Window 0..4: watch = 10 - x + wobble; Σ(x - 2)·wobble = (-1)(.5) + (1)(-.5) = -1 and Σ(x - 2)² = 10,
        // so the least-squares slope is -1 - 1/10 = -1.1.
        double[] wobble = [0, 0.5, 0, -0.5, 0];
        var watch = Enumerable.Range(0, 5).Select(i => 10 - i + wobble[i]).ToArray();
        var f = new OverOptimisationDetector(window: 5, threshold: 0).Detect("w", Epochs(5), Rising(5), watch);

        Assert.NotNull(f);
        Assert.Equal(-1.1, f.WatchSlope, 12);
        // Residuals of the fit, SSR / (k - 2) / Σ(x - x̄)², computed here from the definition.
        var x = Epochs(5);
        double intercept = watch.Average() - f.WatchSlope * x.Average();
        double ssr = x.Select((xi, i) => Math.Pow(watch[i] - (intercept + f.WatchSlope * xi), 2)).Sum();
        Assert.Equal(Math.Sqrt(ssr / 3 / 10), f.WatchSlopeError, 12);
        Assert.Equal(0.1, f.OptimisedSlope, 12);
    }

    [Fact]
    public void NoiseTooShortRunsAndJointFallsAreNotFlagged()
    {
        var detector = new OverOptimisationDetector();
        // Watch drifts down by less than its wobble.
        var noisy = Enumerable.Range(0, 15).Select(i => 5 - 0.01 * i + (i % 2 == 0 ? 0.3 : -0.3)).ToArray();
        Assert.Null(detector.Detect("w", Epochs(15), Rising(15), noisy));
        // Fewer epochs than the window.
        Assert.Null(detector.Detect("w", Epochs(4), Rising(4), [4, 3, 2, 1]));
        // Both fall: a bad run, not over-optimisation.
        var falling = Enumerable.Range(0, 8).Select(i => 5 - 0.5 * i).ToArray();
        Assert.Null(detector.Detect("w", Epochs(8), falling, falling));
    }

    [Fact]
    public void WindowsWithNaNsAreSkippedAndSeparateFallsGiveSeparateSpans()
    {
        // Falls over 0..5, rises over 6..12, falls again over 13..19; a NaN at 16 hides every window from 13 on.
        var watch = Enumerable.Range(0, 20).Select(i => i <= 5 ? 10 - i : i <= 12 ? 5 + (i - 5) : 12 - (i - 12) + 0.0).ToArray();
        watch[16] = double.NaN;

        var f = new OverOptimisationDetector(window: 4).Detect("w", Epochs(20), Rising(20), watch);

        Assert.NotNull(f);
        Assert.Equal(2, f.Spans.Count);
        Assert.Equal(new EpochSpan(0, 5), f.Spans[0]);
        Assert.Equal(12, f.Spans[1].FromEpoch);
        Assert.Equal(15, f.Spans[1].ToEpoch); // later windows contain the NaN
        Assert.Null(new OverOptimisationDetector(window: 4).Detect("w", Epochs(20), Rising(20), watch.Select(_ => double.NaN).ToArray()));
    }

    [Fact]
    public void BadArgumentsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new OverOptimisationDetector(window: 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new OverOptimisationDetector(threshold: double.NaN));
        var e = Assert.Throws<ArgumentException>(() => new OverOptimisationDetector().Detect("w", Epochs(5), Rising(5), [1, 2]));
        Assert.Contains("same length", e.Message);
    }
}
