using System.Text;
using static Ddpo.Reporting.ReportFormat;

namespace Ddpo.Reporting;

/// <summary>
/// Builds one self-contained HTML page comparing several run directories: their reward curves overlaid
/// (legend by run folder name) and a summary table.
/// </summary>
public static class ComparisonReport
{
    /// <summary>
    /// Reads every run in <paramref name="runDirs"/> and writes the comparison page to
    /// <paramref name="outputHtml"/> atomically (creating its folder). Returns the page's full path.
    /// </summary>
    /// <exception cref="ArgumentException">No run directories were given.</exception>
    /// <exception cref="DirectoryNotFoundException">A run directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">A run directory has no <c>metrics.jsonl</c>.</exception>
    public static string Write(IReadOnlyList<string> runDirs, string outputHtml)
    {
        ArgumentNullException.ThrowIfNull(runDirs);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputHtml);
        if (runDirs.Count == 0) throw new ArgumentException("give at least one run directory to compare", nameof(runDirs));
        var runs = runDirs.Select(RunData.Load).ToList();
        var path = Path.GetFullPath(outputHtml);
        WriteAtomic(path, Render(runs, DateTimeOffset.UtcNow));
        return path;
    }

    /// <summary>The comparison page's HTML for already loaded runs.</summary>
    internal static string Render(IReadOnlyList<RunData> runs, DateTimeOffset generated)
    {
        var names = Labels(runs);
        var sb = ReportPage.Open($"DDPO runs: {string.Join(", ", names)}");
        sb.Append($"<header><h1>DDPO run comparison ({runs.Count} runs)</h1><div class=\"meta\">{Escape(string.Join(" · ", runs.Select(r => r.Directory)))}</div></header>\n");

        var series = runs.Select((r, i) => new ChartSeries(names[i], Palette[i % Palette.Length], r.EpochNumbers, r.Series("reward_mean")) { Width = 2.2 }).ToList();
        sb.Append("<section id=\"rewards\"><h2>Reward mean per epoch</h2><div class=\"charts\">");
        sb.Append(ReportPage.Figure("Reward mean per epoch, all runs", SvgChart.Lines("Reward mean per epoch, all runs", "reward mean", series),
            SvgChart.Legend(series.Select(s => (s.Name, s.Color, false))), id: "reward-chart"));
        var withSamples = runs.Select((r, i) => new ChartSeries(names[i], Palette[i % Palette.Length], Cumulative(r.Series("samples")), r.Series("reward_mean")) { Width = 2.2 }).ToList();
        if (withSamples.Any(s => s.X.Any(double.IsFinite)))
        {
            sb.Append(ReportPage.Figure("Reward mean vs samples seen", SvgChart.Lines("Reward mean vs cumulative samples", "reward mean", withSamples, xLabel: "samples (cumulative)"),
                SvgChart.Legend(withSamples.Select(s => (s.Name, s.Color, false))), id: "samples-chart"));
        }
        // Against compute time: the epochs' phase seconds (sampling, rewards, training, eval images) summed up, so that
        // algorithms with different costs per sample (reward backpropagation, DDPO) compare on what they cost.
        var withTime = runs.Select((r, i) => new ChartSeries(names[i], Palette[i % Palette.Length], Cumulative(PhaseSeconds(r)), r.Series("reward_mean")) { Width = 2.2 }).ToList();
        if (withTime.Any(s => s.X.Any(double.IsFinite)))
        {
            sb.Append(ReportPage.Figure("Reward mean vs compute time", SvgChart.Lines("Reward mean vs cumulative compute time", "reward mean", withTime, xLabel: "seconds (cumulative phases)"),
                SvgChart.Legend(withTime.Select(s => (s.Name, s.Color, false))), id: "time-chart"));
        }
        sb.Append("</div></section>\n");

        sb.Append("<section id=\"summary\"><h2>Summary</h2><div class=\"scroll\"><table class=\"data\"><thead><tr>")
          .Append("<th class=\"text\">run</th><th>epochs</th><th>samples</th><th>first reward ± SEM</th><th>last reward ± SEM</th><th>change</th><th>change (SEMs)</th><th>best (epoch)</th><th class=\"text\">watch rewards</th><th class=\"text\">over-optimisation</th></tr></thead><tbody>");
        var detector = new OverOptimisationDetector();
        for (int i = 0; i < runs.Count; i++)
        {
            var s = RunSummary.Of(runs[i]);
            var findings = RunReport.FindOverOptimisation(runs[i], detector);
            var overOpt = findings.Count == 0 ? (runs[i].WatchRewards.Count == 0 ? "—" : "none")
                : string.Join(", ", findings.Select(f => $"{f.WatchReward} from epoch {Num(f.OnsetEpoch)}"));
            var cls = s.Change > 0 ? " class=\"up\"" : s.Change < 0 ? " class=\"down\"" : "";
            sb.Append($"<tr><td class=\"text\"><i style=\"display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px;background:{series[i].Color}\"></i>{Escape(names[i])}</td>")
              .Append($"<td>{s.EpochCount}</td><td>{Num(s.Samples)}</td>")
              .Append($"<td>{Num(s.FirstReward)} ± {Num(s.FirstRewardSem)}</td><td>{Num(s.LastReward)} ± {Num(s.LastRewardSem)}</td>")
              .Append($"<td{cls}>{(double.IsNaN(s.Change) ? "—" : Escape(Signed(s.Change)))}</td><td>{(double.IsNaN(s.ChangeInSems) ? "—" : Escape(Signed(s.ChangeInSems)))}</td>")
              .Append($"<td>{Num(s.BestReward)}{(s.BestEpoch is { } b ? $" ({b})" : "")}</td>")
              .Append($"<td class=\"text\">{Escape(runs[i].WatchRewards.Count == 0 ? "—" : string.Join(", ", runs[i].WatchRewards))}</td>")
              .Append($"<td class=\"text\">{Escape(overOpt)}</td></tr>");
        }
        sb.Append("</tbody></table></div><p class=\"note\">Each run's own report.html has its image grid, per-prompt table and diagnostics.</p></section>\n");
        return ReportPage.Close(sb, generated);
    }

    /// <summary>
    /// Folder names; where several runs share one, those get as many parent folders as needed to tell
    /// them apart ("seed-1/run", "seed-2/run"), and a "#n" suffix as a last resort.
    /// </summary>
    internal static List<string> Labels(IReadOnlyList<RunData> runs)
    {
        var labels = runs.Select(r => r.Name).ToList();
        foreach (var group in Enumerable.Range(0, runs.Count).GroupBy(i => runs[i].Name).Where(g => g.Count() > 1))
        {
            var parts = group.ToDictionary(i => i, i => runs[i].Directory.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries));
            for (int depth = 2; depth <= parts.Values.Max(p => p.Length); depth++)
            {
                var candidate = parts.ToDictionary(kv => kv.Key, kv => string.Join('/', kv.Value.TakeLast(depth)));
                if (candidate.Values.Distinct().Count() < candidate.Count) continue;
                foreach (var (i, label) in candidate) labels[i] = label;
                break;
            }
        }
        return labels.Select((l, i) => labels.Count(x => x == l) > 1 ? $"{l} #{i + 1}" : l).ToList();
    }

    /// <summary>Each epoch's seconds in its phases (the ones it logged); NaN for an epoch that logged none.</summary>
    private static double[] PhaseSeconds(RunData run) => Enumerable.Range(0, run.Epochs.Count)
        .Select(e => RunSummary.PhaseKeys.Select(k => run.Series(k)[e]).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Sum())
        .ToArray();

    private static double[] Cumulative(double[] values)
    {
        var result = new double[values.Length];
        double acc = 0;
        for (int i = 0; i < values.Length; i++)
        {
            if (!double.IsFinite(values[i])) { result[i] = double.NaN; continue; }
            acc += values[i];
            result[i] = acc;
        }
        return result;
    }
}
