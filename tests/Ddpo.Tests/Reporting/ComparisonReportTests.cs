using System.Globalization;
using System.Text.RegularExpressions;
using Ddpo.Reporting;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Reporting;

public sealed class ComparisonReportTests : IDisposable
{
    private readonly string _root = TestPaths.NewTempDir("ddpo-compare");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private RunFixture Run(params string[] parts) => new(Directory.CreateDirectory(Path.Combine([_root, .. parts])).FullName);

    [Fact]
    public void OverlaysRewardCurvesWithOneLegendEntryPerRun()
    {
        var a = Run("seed-1", "run").WriteMetrics(epochs: 6);
        var b = Run("seed-2", "run").WriteMetrics(epochs: 3, watchFallsFrom: 1);
        var c = Run("baseline").WriteMetrics(epochs: 1, withWatch: false);
        var output = Path.Combine(_root, "out", "compare.html");

        var written = ComparisonReport.Write([a.Directory, b.Directory, c.Directory], output);

        Assert.Equal(Path.GetFullPath(output), written);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(output)!, "*.tmp"));
        var html = File.ReadAllText(written);
        Assert.DoesNotContain("<script", html);
        var chart = RunReportTests.Section(html, "reward-chart");
        // Same folder name "run" twice: told apart by their parents; the unique name stays short.
        var lines = Regex.Matches(chart, "data-series=\"([^\"]+)\" points=\"([^\"]+)\"").ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value.Split(' ').Length);
        Assert.Equal(new Dictionary<string, int> { ["seed-1/run"] = 6, ["seed-2/run"] = 3 }, lines);
        Assert.Contains("<title>baseline, epoch 0:", chart); // one epoch: a dot
        foreach (var name in new[] { "seed-1/run", "seed-2/run", "baseline" }) Assert.Contains($"</i>{name}</span>", chart);

        // Against compute time: x is the running sum of the phase seconds (seed-1's epochs: 10 + e + 1.5 + 20 + eval 3 every 4th).
        var timeChart = RunReportTests.Section(html, "time-chart");
        var seed1 = Regex.Match(timeChart, "data-series=\"seed-1/run\" points=\"([^\"]+)\"").Groups[1].Value.Split(' ');
        Assert.Equal(6, seed1.Length);
        Assert.Contains("seconds (cumulative phases)", timeChart);

        var table = RunReportTests.Section(html, "summary");
        Assert.Equal(3, Regex.Matches(table, "<tr><td class=\"text\">").Count);
        double first = (double)a.Lines[0]["reward_mean"]!, last = (double)a.Lines[^1]["reward_mean"]!;
        Assert.Contains($"<td class=\"up\">+{(last - first).ToString("G4", CultureInfo.InvariantCulture)}</td>", table);
        Assert.Contains("<td class=\"text\">none</td>", table); // seed-1 watches aesthetic, which keeps rising
        Assert.Contains("<td class=\"text\">—</td></tr>", table); // baseline watches nothing
    }

    [Fact]
    public void BadInputIsAClearError()
    {
        Assert.Throws<ArgumentException>(() => ComparisonReport.Write([], Path.Combine(_root, "x.html")));
        var missing = Path.Combine(_root, "missing");
        Assert.Contains(missing, Assert.Throws<DirectoryNotFoundException>(() => ComparisonReport.Write([missing], Path.Combine(_root, "x.html"))).Message);
        Assert.False(File.Exists(Path.Combine(_root, "x.html")));
    }
}
