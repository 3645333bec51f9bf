using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Ddpo.Reporting;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Reporting;

public sealed class RunReportTests : IDisposable
{
    private readonly string _root = TestPaths.NewTempDir("ddpo-report");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private RunFixture NewRun(string name = "run-a") => new(Directory.CreateDirectory(Path.Combine(_root, name)).FullName);

    private static string G4(double v) => v.ToString("G4", CultureInfo.InvariantCulture);

    private static int Count(string html, string pattern) => Regex.Matches(html, pattern).Count;

    [Fact]
    public void FullRunHasEverySectionSelfContained()
    {
        var run = NewRun().WriteMetrics(epochs: 8).WriteConfig("[train]\nlearning_rate = 3e-4 # <b> & \"quotes\"\n").WriteImages([0, 4, 8]);

        var path = RunReport.Write(run.Directory);

        Assert.Equal(Path.Combine(run.Directory, "report.html"), path);
        Assert.Empty(Directory.GetFiles(run.Directory, "*.tmp"));
        var html = File.ReadAllText(path);

        // Self-contained: no scripts, no external resources (the SVG namespace is the only URL).
        Assert.DoesNotContain("<script", html);
        Assert.DoesNotMatch("(src|href)=\"(https?:|//)", html);
        Assert.Equal(Count(html, "http://www.w3.org/2000/svg"), Count(html, "https?://"));

        // Every section is there.
        foreach (var id in new[] { "summary", "rewards", "reward-chart", "watch-chart", "components-chart", "images", "prompts", "diagnostics",
                     "chart-approx_kl", "chart-clipfrac", "chart-loss", "time", "time-chart", "config" })
        {
            Assert.Contains($"id=\"{id}\"", html);
        }

        // The reward chart has a mean line over all 8 epochs and a std band.
        var rewardChart = Section(html, "reward-chart");
        var meanLine = Regex.Match(rewardChart, "data-series=\"reward mean\" points=\"([^\"]+)\"");
        Assert.True(meanLine.Success);
        Assert.Equal(8, meanLine.Groups[1].Value.Split(' ').Length);
        Assert.Single(Regex.Matches(rewardChart, "<polygon class=\"band\""));
        // Rising reward draws upwards: SVG y decreases from the first to the last point.
        var ys = meanLine.Groups[1].Value.Split(' ').Select(p => double.Parse(p.Split(',')[1], CultureInfo.InvariantCulture)).ToList();
        Assert.True(ys[^1] < ys[0]);

        // Image grid: 3 prompts × 3 epochs, all embedded as PNG data URIs, epoch 8 (after the last update) included.
        var grid = Section(html, "images");
        Assert.Equal(9, Count(grid, "<img class=\"px\" src=\"data:image/png;base64,"));
        Assert.Contains("<th>epoch 8</th>", grid);
        Assert.Contains("width=\"128\" height=\"128\"", grid);
        Assert.Contains(WebUtility.HtmlEncode(RunFixture.Prompts[1]), grid);
        Assert.DoesNotContain("<b>&amp;</b>", grid);

        // Per-prompt table: first and last epoch means and the change, from the logged lines.
        var table = Section(html, "prompts");
        foreach (var prompt in RunFixture.Prompts)
        {
            double first = PromptMean(run.Lines[0], prompt), last = PromptMean(run.Lines[^1], prompt);
            Assert.Contains($"<td class=\"text\">{WebUtility.HtmlEncode(prompt)}</td><td>0</td><td>{G4(first)} <small>(", table);
            Assert.Contains($"<td>7</td><td>{G4(last)} <small>(", table);
            Assert.Contains($"<td class=\"up\">+{G4(last - first)}</td>", table);
        }

        // Summary: first vs last reward ± SEM and the change in SEMs.
        var summary = Section(html, "summary");
        double m0 = (double)run.Lines[0]["reward_mean"]!, s0 = (double)run.Lines[0]["reward_sem"]!;
        double m7 = (double)run.Lines[7]["reward_mean"]!, s7 = (double)run.Lines[7]["reward_sem"]!;
        Assert.Contains($"{G4(m0)} <small>± {G4(s0)} SEM</small>", summary);
        Assert.Contains($"{G4(m7)} <small>± {G4(s7)} SEM</small>", summary);
        Assert.Contains($"+{G4(m7 - m0)} <small>(+{G4((m7 - m0) / Math.Sqrt(s0 * s0 + s7 * s7))} SEMs)</small>", summary);
        Assert.Contains("8 <small>(epochs 0–7)</small>", summary);
        Assert.Contains("128 <small>(128 trained)</small>", summary);

        // Time per phase: one stacked bar segment per epoch and logged phase (eval images only every 4th epoch).
        Assert.Equal(8 * 3 + 2, Count(Section(html, "time-chart"), "<rect class=\"bar\""));

        // Config verbatim, escaped.
        Assert.Contains("learning_rate = 3e-4 # &lt;b&gt; &amp; &quot;quotes&quot;", Section(html, "config"));

        // Watch reward keeps rising here: no over-optimisation flagged.
        Assert.DoesNotContain("class=\"callout warn\"", html);
        Assert.DoesNotContain("class=\"span\"", html);
    }

    [Fact]
    public void OneEpochWithNaNsAndMissingImagesStillRenders()
    {
        var run = NewRun().WriteMetrics(epochs: 1, withWatch: false,
            overrideValue: (_, key) => key is "reward_std" or "loss" or "approx_kl" ? double.NaN : null);
        run.WriteImages([0], writePrompts: false);
        var folder = Path.Combine(run.Directory, "images", "epoch-0000");
        File.Delete(Path.Combine(folder, "01.png"));
        File.WriteAllBytes(Path.Combine(folder, "02.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]); // truncated PNG

        var html = File.ReadAllText(RunReport.Write(run.Directory));

        Assert.Contains("n/a (one reward epoch)", html);
        Assert.Equal(1, Count(Section(html, "images"), "<img class=\"px\""));
        Assert.Equal(2, Count(Section(html, "images"), "class=\"missing\""));
        Assert.Contains("image 01 (not in prompts.json)", html);
        // A single finite reward point is a dot; the NaN std draws no band; all-NaN charts say so.
        var reward = Section(html, "reward-chart");
        Assert.Contains("<circle class=\"pt\"", reward);
        Assert.DoesNotContain("class=\"band\"", reward);
        Assert.Contains("no finite values logged", Section(html, "chart-loss"));
        Assert.Contains("No watch rewards logged", html);
        Assert.Contains("config.toml not found", html);
        Assert.DoesNotContain("NaN<", Section(html, "reward-chart").Replace("NaN</title>", ""));
    }

    [Fact]
    public void NaNEpochsBreakTheLineAndNonFiniteRewardsAreCalledOut()
    {
        var run = NewRun().WriteMetrics(epochs: 6, withWatch: false,
            overrideValue: (e, key) => e == 3 && key == "reward_mean" ? double.NaN : e == 3 && key == "nonfinite_rewards" ? 5 : null);

        var html = File.ReadAllText(RunReport.Write(run.Directory));

        var lines = Regex.Matches(Section(html, "reward-chart"), "data-series=\"reward mean\" points=\"([^\"]+)\"");
        Assert.Equal([3, 2], lines.Select(m => m.Groups[1].Value.Split(' ').Length));
        Assert.Contains("5 non-finite rewards were logged", html);
        Assert.Contains("Epochs: 3.", html);
        Assert.Contains("No evaluation images yet", html);
    }

    [Fact]
    public void OverOptimisationIsMarkedWhereTheWatchRewardFalls()
    {
        var run = NewRun().WriteMetrics(epochs: 14, watchFallsFrom: 6);

        var html = File.ReadAllText(RunReport.Write(run.Directory));

        // The watch reward peaks at epoch 6 and falls from there to the end.
        Assert.Contains("Over-optimisation: from epoch 6 the optimised reward keeps rising while watch reward “aesthetic” falls", html);
        Assert.Contains("class=\"span\"", Section(html, "watch-chart"));
        Assert.Contains("class=\"span\"", Section(html, "reward-chart"));
        Assert.Contains("over-opt</text>", Section(html, "watch-chart"));
    }

    [Fact]
    public void CollapsedEpochsAreCalledOutMarkedOnTheRewardChartAndBadgedInTheGrid()
    {
        var run = NewRun().WriteMetrics(epochs: 8, withWatch: false, collapsed: e => e is 2 or 5 or 6).WriteImages([0, 2, 4, 6]);

        var html = File.ReadAllText(RunReport.Write(run.Directory));

        Assert.Contains("Reward collapse: 3 epochs with zero reward spread", html);
        Assert.Contains("Every sample of epochs 2, 5–6 got the same reward", html);
        Assert.Contains("train.kl_coef", html);
        // One marker line per collapsed epoch, labelled once per run of consecutive epochs.
        var chart = Section(html, "reward-chart");
        Assert.Equal(3, Count(chart, "<line class=\"marker\"[^>]*stroke=\"#8c2d9c\""));
        Assert.Equal(2, Count(chart, ">collapsed</text>"));
        // The grid's columns of epochs 2 and 6 (not 0 and 4) carry the badge.
        var grid = Section(html, "images");
        Assert.Equal(2, Count(grid, "class=\"badge collapsed\""));
        Assert.Matches("epoch 2<small>[^<]*</small><span class=\"badge collapsed\"", grid);
        Assert.Matches("epoch 6<small>[^<]*</small><span class=\"badge collapsed\"", grid);

        // Without collapsed epochs (or with the field false) there is none of it.
        var fine = NewRun("run-b").WriteMetrics(epochs: 8, withWatch: false, collapsed: _ => false).WriteImages([0, 2]);
        var fineHtml = File.ReadAllText(RunReport.Write(fine.Directory));
        Assert.DoesNotContain("Reward collapse", fineHtml);
        Assert.DoesNotContain("collapsed</", fineHtml);
    }

    [Fact]
    public void EmptyMetricsSaysNoEpochsYetAndBadDirectoriesAreClearErrors()
    {
        var run = NewRun();
        File.WriteAllText(Path.Combine(run.Directory, "metrics.jsonl"), "");
        var html = File.ReadAllText(RunReport.Write(run.Directory));
        Assert.Contains("No epochs logged yet", html);

        var missing = Path.Combine(_root, "nope");
        Assert.Contains(missing, Assert.Throws<DirectoryNotFoundException>(() => RunReport.Write(missing)).Message);
        var notRun = Directory.CreateDirectory(Path.Combine(_root, "not-a-run")).FullName;
        Assert.Contains("no metrics.jsonl", Assert.Throws<FileNotFoundException>(() => RunReport.Write(notRun)).Message);
        File.WriteAllText(Path.Combine(notRun, "metrics.jsonl"), "{\"reward_mean\": 1}\n");
        var e = Assert.Throws<FormatException>(() => RunReport.Write(notRun));
        Assert.Contains("record 1: field 'epoch'", e.Message);
    }

    [Fact]
    public void ALineBeingAppendedIsLeftOutAndAMalformedOneIsAnError()
    {
        var run = NewRun();
        var metrics = Path.Combine(run.Directory, "metrics.jsonl");
        File.WriteAllText(metrics, "{\"epoch\": 0, \"reward_mean\": 1.0}\n{\"epoch\": 1, \"reward_mean\"");
        Assert.Equal([1.0], RunData.Load(run.Directory).Series("reward_mean"));
        File.AppendAllText(metrics, ": 2.0}\n");
        Assert.Equal([1.0, 2.0], RunData.Load(run.Directory).Series("reward_mean"));

        File.AppendAllText(metrics, "{\"epoch\": 2, \"reward_mean\"}\n");
        var e = Assert.Throws<FormatException>(() => RunData.Load(run.Directory));
        Assert.Contains("metrics.jsonl:3", e.Message);
    }

    [Fact]
    public void RewriteReplacesTheReportAndLastLineOfAnEpochWins()
    {
        var run = NewRun().WriteMetrics(epochs: 2);
        var first = File.ReadAllText(RunReport.Write(run.Directory));
        Assert.Contains("2 <small>(epochs 0–1)</small>", first);

        run.WriteMetrics(epochs: 3); // a resumed run re-logs epochs 0..2
        var second = File.ReadAllText(RunReport.Write(run.Directory));
        Assert.Contains("3 <small>(epochs 0–2)</small>", second);
        Assert.Single(Directory.GetFiles(run.Directory, "report*"));
        Assert.Empty(Directory.GetFiles(run.Directory, ".*tmp"));
    }

    [Fact]
    public void LongRunsShowAtMostTwelveEvenlySpacedImageColumns()
    {
        var run = NewRun().WriteMetrics(epochs: 2).WriteImages(Enumerable.Range(0, 20).ToList(), size: 64);
        var grid = Section(File.ReadAllText(RunReport.Write(run.Directory)), "images");
        var headers = Regex.Matches(grid, "<th>epoch (\\d+)").Select(m => int.Parse(m.Groups[1].Value)).ToList();
        Assert.Equal(RunReport.MaxGridColumns, headers.Count);
        Assert.Equal(0, headers[0]);
        Assert.Equal(19, headers[^1]);
        Assert.Equal(headers.Order(), headers);
        Assert.Contains("Showing 12 of 20 logged epochs", grid);
        Assert.Contains("width=\"128\" height=\"128\"", grid); // 64 px magnified 2×
    }

    private static double PromptMean(Dictionary<string, object?> line, string prompt) =>
        (double)((Dictionary<string, object?>)((Dictionary<string, object?>)line["prompt_rewards"]!)[prompt]!)["mean"]!;

    /// <summary>The element with id <paramref name="id"/> up to the end of its section/figure (enough for assertions).</summary>
    internal static string Section(string html, string id)
    {
        var start = html.IndexOf($"id=\"{id}\"", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no element with id {id}");
        var tag = html.LastIndexOf('<', start);
        var name = Regex.Match(html[(tag + 1)..], "^[a-z]+").Value;
        var end = html.IndexOf($"</{name}>", start, StringComparison.Ordinal);
        return html[tag..(end + name.Length + 3)];
    }
}
