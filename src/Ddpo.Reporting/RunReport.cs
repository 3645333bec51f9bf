using System.Globalization;
using System.Text;
using Ddpo.Runs;
using Ddpo.Training;
using static Ddpo.Reporting.ReportFormat;

namespace Ddpo.Reporting;

/// <summary>
/// Builds <c>report.html</c> for one run directory: one self-contained file (images as base64 data URIs,
/// plots as inline SVG, no scripts, no network) with the reward curve (mean ± std), watch rewards and
/// over-optimisation markers, the fixed-seed image grid across epochs, a per-prompt reward table,
/// approx_kl / clipfrac / loss plots, time per phase and the resolved config.
/// </summary>
public static class RunReport
{
    /// <summary>The report's file name inside the run directory.</summary>
    public const string FileName = RunFolder.ReportFileName;

    /// <summary>The image grid shows at most this many epoch columns (evenly spaced, first and last always included).</summary>
    public const int MaxGridColumns = 12;

    private const string OverOptColor = "#d62728";

    private const string CollapseColor = "#8c2d9c";

    /// <summary>
    /// Reads <paramref name="runDir"/> and writes <c>runDir/report.html</c> atomically (temporary file,
    /// then rename), so a browser never sees a half-written report. Returns the report's path.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">It has no <c>metrics.jsonl</c>.</exception>
    /// <exception cref="FormatException">A metrics line or <c>images/prompts.json</c> is malformed.</exception>
    public static string Write(string runDir)
    {
        var run = RunData.Load(runDir);
        var path = RunFolder.At(run.Directory).ReportFile;
        WriteAtomic(path, Render(run, DateTimeOffset.UtcNow));
        return path;
    }

    /// <summary>The report's HTML for an already loaded run (what <see cref="Write"/> writes).</summary>
    internal static string Render(RunData run, DateTimeOffset generated)
    {
        var summary = RunSummary.Of(run);
        var detector = new OverOptimisationDetector();
        var findings = FindOverOptimisation(run, detector);

        var sb = ReportPage.Open($"DDPO run {run.Name}");
        sb.Append($"<header><h1>DDPO run: {Escape(run.Name)}</h1><div class=\"meta\">{Escape(run.Directory)}");
        if (summary.LastTime is { } t) sb.Append($" · last epoch logged {t.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC");
        sb.Append("</div></header>\n");

        AppendCallouts(sb, run, summary, findings, detector);
        AppendSummary(sb, summary);
        if (run.Epochs.Count > 0) AppendRewardCharts(sb, run, findings, detector);
        AppendImageGrid(sb, run);
        AppendPromptTable(sb, run);
        if (run.Epochs.Count > 0)
        {
            AppendDiagnostics(sb, run);
            AppendPhases(sb, run, summary);
        }
        sb.Append("<section id=\"config\"><h2>Resolved config</h2>");
        sb.Append(run.ConfigText is null
            ? $"<p class=\"note\">{RunFolder.ConfigFileName} not found in the run directory.</p>"
            : $"<pre class=\"config\">{Escape(run.ConfigText)}</pre>");
        sb.Append("</section>\n");
        return ReportPage.Close(sb, generated);
    }

    internal static List<OverOptimisationFinding> FindOverOptimisation(RunData run, OverOptimisationDetector detector)
    {
        var x = run.EpochNumbers;
        var optimised = run.Series("reward_mean");
        return run.WatchRewards
            .Select(w => detector.Detect(w, x, optimised, run.Series($"watch_{w}_mean")))
            .OfType<OverOptimisationFinding>()
            .ToList();
    }

    private static void AppendCallouts(StringBuilder sb, RunData run, RunSummary summary, List<OverOptimisationFinding> findings, OverOptimisationDetector detector)
    {
        if (run.Epochs.Count == 0)
        {
            sb.Append(ReportPage.Callout("info", "No epochs logged yet", "<p class=\"note\">metrics.jsonl is empty; the report fills in as training logs epochs.</p>"));
        }
        foreach (var f in findings)
        {
            var spans = string.Join(", ", f.Spans.Select(s => $"{Num(s.FromEpoch)}–{Num(s.ToEpoch)}"));
            sb.Append(ReportPage.Callout("warn", $"Over-optimisation: from epoch {Num(f.OnsetEpoch)} the optimised reward keeps rising while watch reward “{f.WatchReward}” falls",
                $"In the first flagged window the optimised reward changes by {Signed(f.OptimisedSlope)}/epoch while {Escape(f.WatchReward)} changes by " +
                $"{Signed(f.WatchSlope)}/epoch (± {Num(f.WatchSlopeError)}). Flagged epochs: {Escape(spans)} (shaded red in the reward charts). " +
                $"<span class=\"note\">Rule: {Escape(detector.Describe())}.</span>"));
        }
        var collapsed = run.CollapsedEpochs;
        if (collapsed.Count > 0)
        {
            var byEpoch = run.Epochs.ToDictionary(e => e.Epoch);
            var values = collapsed.Select(e => byEpoch[e].RewardMean).Where(double.IsFinite).Distinct().Take(3).Select(Num);
            sb.Append(ReportPage.Callout("warn", $"Reward collapse: {collapsed.Count} epoch{(collapsed.Count == 1 ? "" : "s")} with zero reward spread",
                $"<p>Every sample of epoch{(collapsed.Count == 1 ? "" : "s")} {Escape(EpochRanges(collapsed))} got the same reward ({Escape(string.Join(", ", values))}): " +
                "the policy has likely collapsed and produces identical images (e.g. all black), so those updates have no signal. " +
                "Lower <code>train.learning_rate</code> or use the KL penalty (<code>train.kl_coef</code> &gt; 0).</p>" +
                "<p class=\"note\">Marked “collapsed” on the reward chart and in the image grid (field <code>reward_collapsed</code>).</p>"));
        }
        if (summary.NonfiniteRewards > 0)
        {
            var where = run.Epochs.Where(e => e["nonfinite_rewards"] > 0).Select(e => e.Epoch.ToString(CultureInfo.InvariantCulture));
            sb.Append(ReportPage.Callout("caution", $"{Num(summary.NonfiniteRewards)} non-finite rewards were logged",
                $"<p class=\"note\">Epochs: {Escape(string.Join(", ", where))}. Those samples were left out of training.</p>"));
        }
    }

    private static void AppendSummary(StringBuilder sb, RunSummary s)
    {
        sb.Append("<section id=\"summary\"><h2>Summary</h2><dl class=\"summary\">");
        void Item(string label, string valueHtml) => sb.Append($"<div><dt>{Escape(label)}</dt><dd>{valueHtml}</dd></div>");
        Item("Epochs logged", s.EpochCount == 0 ? "0" : $"{s.EpochCount} <small>(epochs {s.FirstEpoch}–{s.LastEpoch})</small>");
        Item("Samples", $"{Num(s.Samples)} <small>({Num(s.SamplesTrained)} trained)</small>");
        Item(s.FirstRewardEpoch is { } fe ? $"Reward, epoch {fe}" : "Reward, first epoch", $"{Num(s.FirstReward)} <small>± {Num(s.FirstRewardSem)} SEM</small>");
        Item(s.LastRewardEpoch is { } le ? $"Reward, epoch {le}" : "Reward, last epoch", $"{Num(s.LastReward)} <small>± {Num(s.LastRewardSem)} SEM</small>");
        Item("Change", double.IsNaN(s.Change) ? "<small>n/a (one reward epoch)</small>"
            : $"{Escape(Signed(s.Change))} <small>({Escape(Signed(s.ChangeInSems))} SEMs)</small>");
        Item("Best reward", s.BestEpoch is { } be ? $"{Num(s.BestReward)} <small>(epoch {be})</small>" : "<small>n/a</small>");
        Item("Compute time", s.PhaseSeconds.Count == 0 ? "<small>n/a</small>"
            : $"{Duration(s.PhaseSeconds.Values.Sum())}{(s.WallClock is { } w ? $" <small>(wall {Duration(w.TotalSeconds)})</small>" : "")}");
        Item("Non-finite rewards", Num(s.NonfiniteRewards));
        sb.Append("</dl><p class=\"note\">Change in SEMs = (last − first) / √(SEM<sub>first</sub>² + SEM<sub>last</sub>²); SEM is the standard error of an epoch's mean reward.</p></section>\n");
    }

    private static void AppendRewardCharts(StringBuilder sb, RunData run, List<OverOptimisationFinding> findings, OverOptimisationDetector detector)
    {
        var x = run.EpochNumbers;
        var mean = run.Series("reward_mean");
        var std = run.Series("reward_std");
        var spans = findings.SelectMany(f => f.Spans.Select(s => new ChartSpan(s.FromEpoch, s.ToEpoch, $"over-optimisation ({f.WatchReward})", OverOptColor))).ToList();
        var markers = findings.Select(f => f.OnsetEpoch).Distinct().Select(e => new ChartMarker(e, "over-opt", OverOptColor)).ToList();
        // Every collapsed epoch gets a line; the first of each run of consecutive ones the label.
        var collapsed = run.CollapsedEpochs;
        var collapseMarkers = collapsed.Select((e, i) => new ChartMarker(e, i == 0 || collapsed[i - 1] != e - 1 ? "collapsed" : "", CollapseColor)).ToList();

        sb.Append("<section id=\"rewards\"><h2>Reward</h2><div class=\"charts\">");
        var rewardSeries = new List<ChartSeries>
        {
            new("reward mean", Palette[0], x, mean)
            {
                Lower = mean.Zip(std, (m, s) => m - s).ToArray(),
                Upper = mean.Zip(std, (m, s) => m + s).ToArray(),
                Width = 2.5,
            },
        };
        var legend = new List<(string, string, bool)> { ("mean", Palette[0], false), ("± std (band)", "#a9c9e6", false) };
        if (run.Has("reward_min") && run.Has("reward_max"))
        {
            rewardSeries.Add(new ChartSeries("reward min", "#9aa1ab", x, run.Series("reward_min")) { Dashed = true, Width = 1.2, Dots = false });
            rewardSeries.Add(new ChartSeries("reward max", "#9aa1ab", x, run.Series("reward_max")) { Dashed = true, Width = 1.2, Dots = false });
            legend.Add(("min / max", "#9aa1ab", true));
        }
        sb.Append(ReportPage.Figure("Reward per epoch: mean ± std", SvgChart.Lines("Reward mean ± std per epoch", "reward", rewardSeries, spans, [.. markers, .. collapseMarkers]),
            SvgChart.Legend(legend), collapsed.Count > 0 ? "Dashed purple lines: epochs whose rewards collapsed (all equal)." : null, id: "reward-chart"));

        if (run.WatchRewards.Count > 0)
        {
            var watchSeries = new List<ChartSeries> { new("optimised reward", Palette[0], x, Normalise(mean)) { Width = 2.5 } };
            var watchLegend = new List<(string, string, bool)> { ($"optimised reward ({Range(mean)})", Palette[0], false) };
            for (int i = 0; i < run.WatchRewards.Count; i++)
            {
                var name = run.WatchRewards[i];
                var raw = run.Series($"watch_{name}_mean");
                var color = Palette[1 + i % (Palette.Length - 1)];
                watchSeries.Add(new ChartSeries($"watch: {name}", color, x, Normalise(raw)));
                watchLegend.Add(($"watch: {name} ({Range(raw)})", color, false));
            }
            sb.Append(ReportPage.Figure("Optimised vs watch rewards (normalised)", SvgChart.Lines("Optimised and watch rewards, normalised", "normalised (min 0, max 1)", watchSeries, spans, markers),
                SvgChart.Legend(watchLegend),
                $"Each curve is scaled to [0, 1] over the run (raw first → last in the legend). Watch rewards are logged, not optimised. Over-optimisation rule: {Escape(detector.Describe())}.",
                id: "watch-chart"));
        }

        if (run.RewardComponents.Count > 0)
        {
            var comp = run.RewardComponents.Select((c, i) => new ChartSeries(c, Palette[(2 + i) % Palette.Length], x, run.Series($"reward_{c}_mean"))).ToList();
            sb.Append(ReportPage.Figure("Reward components (mean per epoch)", SvgChart.Lines("Reward components", "component reward", comp),
                SvgChart.Legend(comp.Select(c => (c.Name, c.Color, false))), id: "components-chart"));
        }
        sb.Append("</div>");
        if (run.WatchRewards.Count == 0)
        {
            sb.Append("<p class=\"note\">No watch rewards logged (fields <code>watch_&lt;name&gt;_mean</code>), so over-optimisation is not checked.</p>");
        }
        sb.Append("</section>\n");
    }

    private static void AppendImageGrid(StringBuilder sb, RunData run)
    {
        sb.Append("<section id=\"images\"><h2>Fixed-seed samples across epochs</h2>");
        if (run.ImageEpochs.Count == 0)
        {
            sb.Append($"<p class=\"note\">No evaluation images yet ({RunFolder.ImagesFolderName}/epoch-NNNN folders).</p></section>\n");
            return;
        }
        var columns = PickColumns(run.ImageEpochs);
        int rows = Math.Max(run.EvalPrompts.Count, columns.Select(MaxImageIndex).DefaultIfEmpty(-1).Max() + 1);
        var byEpoch = run.Epochs.ToDictionary(e => e.Epoch);
        var collapsed = run.CollapsedEpochs.ToHashSet();
        sb.Append("<div class=\"scroll\"><table class=\"grid\"><thead><tr><th></th>");
        foreach (var c in columns)
        {
            var reward = byEpoch.TryGetValue(c.Epoch, out var m) && m.TryGetNumber("reward_mean", out var r) ? $"<small>reward {Num(r)}</small>" : "";
            var badge = collapsed.Contains(c.Epoch) ? "<span class=\"badge collapsed\" title=\"every reward of this epoch was the same\">collapsed</span>" : "";
            sb.Append($"<th>epoch {c.Epoch}{reward}{badge}</th>");
        }
        sb.Append("</tr></thead><tbody>");
        for (int p = 0; p < rows; p++)
        {
            var prompt = p < run.EvalPrompts.Count ? run.EvalPrompts[p] : $"image {p:00} (not in {RunFolder.EvalPromptsFileName})";
            sb.Append($"<tr><th class=\"prompt\">{Escape(prompt)}</th>");
            foreach (var c in columns)
            {
                var img = EmbeddedImage.TryLoad(c.ImagePath(p));
                if (img is null)
                {
                    sb.Append("<td><div class=\"missing\" style=\"width:128px;height:128px\">missing</div></td>");
                    continue;
                }
                var (w, h) = img.DisplaySize();
                var label = $"{prompt}, epoch {c.Epoch} ({img.Width}×{img.Height})";
                sb.Append($"<td><img class=\"px\" src=\"{img.DataUri}\" width=\"{w}\" height=\"{h}\" alt=\"{Escape(label)}\" title=\"{Escape(label)}\"></td>");
            }
            sb.Append("</tr>");
        }
        sb.Append("</tbody></table></div>");
        var shown = columns.Count < run.ImageEpochs.Count ? $"Showing {columns.Count} of {run.ImageEpochs.Count} logged epochs, evenly spaced. " : "";
        sb.Append($"<p class=\"note\">{shown}Rows: eval prompts (same seed every epoch); columns: epochs. Images are magnified without smoothing.</p></section>\n");
    }

    private static int MaxImageIndex(ImageEpoch e) => Directory.EnumerateFiles(e.Directory, "*.png")
        .Select(f => int.TryParse(Path.GetFileNameWithoutExtension(f), NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? i : -1)
        .DefaultIfEmpty(-1).Max();

    internal static List<ImageEpoch> PickColumns(IReadOnlyList<ImageEpoch> all)
    {
        if (all.Count <= MaxGridColumns) return all.ToList();
        return Enumerable.Range(0, MaxGridColumns)
            .Select(i => (int)Math.Round(i * (all.Count - 1) / (double)(MaxGridColumns - 1)))
            .Distinct().Select(i => all[i]).ToList();
    }

    private static void AppendPromptTable(StringBuilder sb, RunData run)
    {
        sb.Append("<section id=\"prompts\"><h2>Reward per prompt</h2>");
        var rows = new Dictionary<string, (int FirstEpoch, PromptReward First, int LastEpoch, PromptReward Last)>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var e in run.Epochs)
        {
            foreach (var (prompt, r) in e.PromptRewards)
            {
                if (rows.TryGetValue(prompt, out var row))
                {
                    rows[prompt] = row with { LastEpoch = e.Epoch, Last = r };
                }
                else
                {
                    rows[prompt] = (e.Epoch, r, e.Epoch, r);
                    order.Add(prompt);
                }
            }
        }
        if (order.Count == 0)
        {
            sb.Append("<p class=\"note\">No per-prompt rewards logged (field <code>prompt_rewards</code>).</p></section>\n");
            return;
        }
        sb.Append("<div class=\"scroll\"><table class=\"data\"><thead><tr><th class=\"text\">prompt</th><th>first epoch</th><th>first mean (n)</th><th>last epoch</th><th>last mean (n)</th><th>change</th></tr></thead><tbody>");
        foreach (var prompt in order)
        {
            var (fe, f, le, l) = rows[prompt];
            var change = le != fe ? l.Mean - f.Mean : double.NaN;
            var cls = change > 0 ? " class=\"up\"" : change < 0 ? " class=\"down\"" : "";
            sb.Append($"<tr><td class=\"text\">{Escape(prompt)}</td><td>{fe}</td><td>{Num(f.Mean)} <small>({f.Count})</small></td>")
              .Append($"<td>{le}</td><td>{Num(l.Mean)} <small>({l.Count})</small></td><td{cls}>{(le == fe ? "—" : Escape(Signed(change)))}</td></tr>");
        }
        sb.Append("</tbody></table></div><p class=\"note\">First and last epoch in which each prompt was sampled; n = samples of the prompt in that epoch.</p></section>\n");
    }

    private static readonly (string Key, string Title, string YLabel)[] Diagnostics =
    [
        ("approx_kl", "Approx. KL (sampling vs current policy)", "approx_kl"),
        ("clipfrac", "Clip fraction", "clipfrac"),
        ("loss", "Policy loss", "loss"),
        ("first_ratio_max_dev", "First-step max |ratio − 1| (≈ 0 expected)", "max |ratio − 1|"),
        ("learning_rate", "Learning rate", "learning rate"),
    ];

    private static void AppendDiagnostics(StringBuilder sb, RunData run)
    {
        var present = Diagnostics.Where(d => run.Has(d.Key)).ToList();
        if (present.Count == 0) return;
        var x = run.EpochNumbers;
        sb.Append("<section id=\"diagnostics\"><h2>Training diagnostics</h2><div class=\"charts\">");
        for (int i = 0; i < present.Count; i++)
        {
            var (key, title, yLabel) = present[i];
            var color = Palette[(i + 4) % Palette.Length];
            sb.Append(ReportPage.Figure(title, SvgChart.Lines(title, yLabel, [new ChartSeries(key, color, x, run.Series(key))]), id: $"chart-{key}"));
        }
        sb.Append("</div></section>\n");
    }

    private static void AppendPhases(StringBuilder sb, RunData run, RunSummary summary)
    {
        if (summary.PhaseSeconds.Count == 0) return;
        var layers = summary.PhaseSeconds.Keys.Select((k, i) => new BarLayer(k, Palette[i % Palette.Length], run.Series(k))).ToList();
        var total = summary.PhaseSeconds.Values.Sum();
        sb.Append("<section id=\"time\"><h2>Time per phase</h2><div class=\"charts\">");
        sb.Append(ReportPage.Figure("Seconds per epoch, by phase", SvgChart.StackedBars("Seconds per epoch by phase", "seconds", run.EpochNumbers, layers),
            SvgChart.Legend(layers.Select(l => (l.Name, l.Color, false))), id: "time-chart"));
        sb.Append("<div><table class=\"data\"><thead><tr><th class=\"text\">phase</th><th>total</th><th>share</th><th>mean / epoch</th></tr></thead><tbody>");
        foreach (var (k, v) in summary.PhaseSeconds)
        {
            var perEpoch = run.Series(k).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
            sb.Append($"<tr><td class=\"text\">{Escape(k)}</td><td>{Duration(v)}</td><td>{(total > 0 ? (v / total).ToString("P0", CultureInfo.InvariantCulture) : "—")}</td><td>{Duration(perEpoch)}</td></tr>");
        }
        sb.Append($"<tr><th class=\"text\">all</th><th>{Duration(total)}</th><th></th><th></th></tr></tbody></table></div></div></section>\n");
    }

    /// <summary>Epoch numbers (ascending) as ranges: "2, 5–7".</summary>
    internal static string EpochRanges(IReadOnlyList<int> epochs)
    {
        var parts = new List<string>();
        for (int i = 0; i < epochs.Count;)
        {
            int j = i;
            while (j + 1 < epochs.Count && epochs[j + 1] == epochs[j] + 1) j++;
            parts.Add(j == i ? epochs[i].ToString(CultureInfo.InvariantCulture)
                : string.Create(CultureInfo.InvariantCulture, $"{epochs[i]}–{epochs[j]}"));
            i = j + 1;
        }
        return string.Join(", ", parts);
    }

    private static double[] Normalise(double[] values)
    {
        var finite = values.Where(double.IsFinite).ToList();
        if (finite.Count == 0) return values;
        double lo = finite.Min(), hi = finite.Max();
        return values.Select(v => !double.IsFinite(v) ? double.NaN : hi > lo ? (v - lo) / (hi - lo) : 0.5).ToArray();
    }

    private static string Range(double[] values)
    {
        var finite = values.Where(double.IsFinite).ToList();
        return finite.Count == 0 ? "no finite values" : $"{Num(finite[0])} → {Num(finite[^1])}";
    }
}
