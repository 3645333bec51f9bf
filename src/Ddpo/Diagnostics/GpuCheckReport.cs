using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Runtime;

namespace Ddpo.Diagnostics;

/// <summary>
/// The GPU check's results: our environment, correctness rows, fp16 gradient health and speed rows, merged with
/// PyTorch's results (<c>torch_bench.py</c>'s JSON) by row key; written as <c>gpu-check.json</c> and <c>gpu-check.md</c>
/// after every section, so that a run cut short still leaves what it measured.
/// </summary>
internal sealed class GpuCheckReport
{
    /// <summary>JSON file name.</summary>
    public const string JsonName = "gpu-check.json";

    /// <summary>Markdown file name.</summary>
    public const string MarkdownName = "gpu-check.md";

    /// <summary>PyTorch's timings for the full sizes measured earlier on an H200 (the issue's figures to beat).</summary>
    public static readonly IReadOnlyDictionary<string, double> EarlierH200PyTorchMs = new Dictionary<string, double>
    {
        ["unet_forward_fp16_b16"] = 49.6, ["lora_train_step_b8"] = 178, ["lora_train_step_b16"] = 166, ["vae_decode_b8"] = 111,
    };

    /// <summary>"full" or "smoke".</summary>
    public required string Mode { get; init; }
    /// <summary>Our environment.</summary>
    public Dictionary<string, string> Environment { get; set; } = new();
    /// <summary>Correctness rows.</summary>
    public List<FixtureRow> Correctness { get; } = new();
    /// <summary>fp16 gradient health rows.</summary>
    public List<GradientHealthRow> Health { get; } = new();
    /// <summary>Our speed rows.</summary>
    public List<SpeedRow> Speed { get; } = new();
    /// <summary>What failed (section or row, message).</summary>
    public List<string> Errors { get; } = new();
    /// <summary>Sections still to run or skipped, with why.</summary>
    public List<string> Notes { get; } = new();
    /// <summary>PyTorch's results file, or null.</summary>
    public string? TorchResultsPath { get; init; }

    /// <summary>True when every fp32 correctness row passed (and there is at least one).</summary>
    public bool CorrectnessPassed => Correctness.Any(r => r.Passed is not null) && Correctness.All(r => r.Passed != false);

    private sealed record TorchSide(Dictionary<string, string> Environment, Dictionary<string, (string What, double Ms, Dictionary<string, double> Extra)> Rows, string? Skipped, List<string> Errors);

    private TorchSide ReadTorch()
    {
        var side = new TorchSide(new(), new(), null, new());
        if (TorchResultsPath is null) return side with { Skipped = "no PyTorch results file given (--torch-results)" };
        if (!File.Exists(TorchResultsPath)) return side with { Skipped = $"{TorchResultsPath} not found (torch_bench.py did not run or wrote nothing)" };
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(TorchResultsPath));
        }
        catch (JsonException e)
        {
            return side with { Skipped = $"{TorchResultsPath}: not valid JSON ({e.Message})" };
        }
        if (root?["environment"] is JsonObject env)
        {
            foreach (var (k, v) in env) side.Environment[k] = v?.ToString() ?? "";
        }
        if (root?["rows"] is JsonArray rows)
        {
            foreach (var row in rows.OfType<JsonObject>())
            {
                var key = row["key"]?.GetValue<string>();
                if (key is null || row["ms"] is not JsonValue msValue || !msValue.TryGetValue<double>(out var ms)) continue;
                var extra = new Dictionary<string, double>();
                if (row["extra"] is JsonObject e)
                {
                    foreach (var (k, v) in e) if (v is JsonValue jv && jv.TryGetValue<double>(out var d)) extra[k] = d;
                }
                side.Rows[key] = (row["what"]?.GetValue<string>() ?? key, ms, extra);
            }
        }
        if (root?["errors"] is JsonArray errors) side.Errors.AddRange(errors.Select(e => e?.ToString() ?? ""));
        return side with { Skipped = root?["skipped"]?.GetValue<string>() };
    }

    /// <summary>Writes both files into <paramref name="outDirectory"/> (atomically each).</summary>
    public void Write(string outDirectory)
    {
        Directory.CreateDirectory(outDirectory);
        var torch = ReadTorch();
        AtomicFile.WriteAllText(Path.Combine(outDirectory, JsonName), ToJson(torch).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(outDirectory, MarkdownName), ToMarkdown(torch));
    }

    private static JsonNode Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : JsonValue.Create(v.ToString(CultureInfo.InvariantCulture));

    private static JsonObject Extras(IReadOnlyDictionary<string, double> extra) =>
        new(extra.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)Number(kv.Value))));

    private JsonObject ToJson(TorchSide torch)
    {
        var speed = new JsonArray();
        foreach (var key in SpeedKeys(torch))
        {
            var ours = Speed.FirstOrDefault(r => r.Key == key);
            torch.Rows.TryGetValue(key, out var theirs);
            bool hasTheirs = torch.Rows.ContainsKey(key);
            var row = new JsonObject
            {
                ["key"] = key,
                ["what"] = ours?.What ?? theirs.What,
                ["ours_ms"] = ours is null ? null : Number(ours.Ms),
                ["pytorch_ms"] = hasTheirs ? Number(theirs.Ms) : null,
                ["ratio_pytorch_over_ours"] = ours is not null && hasTheirs ? Number(theirs.Ms / ours.Ms) : null,
                ["ours"] = ours is null ? null : Extras(ours.Extra),
                ["pytorch"] = hasTheirs ? Extras(theirs.Extra) : null,
            };
            if (Mode == "full" && EarlierH200PyTorchMs.TryGetValue(key, out var earlier)) row["earlier_pytorch_h200_ms"] = earlier;
            speed.Add(row);
        }
        return new JsonObject
        {
            ["mode"] = Mode,
            ["written"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            ["environment"] = new JsonObject
            {
                ["ours"] = new JsonObject(Environment.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                ["pytorch"] = new JsonObject(torch.Environment.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            },
            ["correctness_passed"] = CorrectnessPassed,
            ["correctness"] = new JsonArray(Correctness.Select(r => (JsonNode)new JsonObject
            {
                ["fixture"] = r.Fixture, ["output"] = r.Output, ["dtype"] = r.DType, ["reference"] = r.Reference,
                ["max_abs_error"] = Number(r.MaxAbsError), ["relative_error"] = Number(r.RelativeError),
                ["tolerance"] = r.Tolerance is { } t ? Number(t) : null, ["passed"] = r.Passed,
            }).ToArray()),
            ["fp16_health"] = new JsonArray(Health.Select(h => (JsonNode)new JsonObject
            {
                ["variant"] = h.Variant, ["grad_norm"] = Number(h.GradNorm), ["relative_error_vs_fp32"] = Number(h.RelativeError),
                ["zero_fraction"] = Number(h.ZeroFraction), ["finite"] = h.Finite,
            }).ToArray()),
            ["speed"] = speed,
            ["pytorch_skipped"] = torch.Skipped,
            ["errors"] = new JsonArray(Errors.Concat(torch.Errors.Select(e => "pytorch: " + e)).Select(e => (JsonNode)e).ToArray()),
            ["notes"] = new JsonArray(Notes.Select(n => (JsonNode)n).ToArray()),
        };
    }

    private IEnumerable<string> SpeedKeys(TorchSide torch) => Speed.Select(r => r.Key).Concat(torch.Rows.Keys).Distinct();

    private static string F(double v, string format = "G4") => double.IsNaN(v) ? "NaN" : v.ToString(format, CultureInfo.InvariantCulture);

    private static string ExtraText(IReadOnlyDictionary<string, double>? extra) =>
        extra is null || extra.Count == 0 ? "" : string.Join(", ", extra.Select(kv => $"{kv.Key} {F(kv.Value)}"));

    private string ToMarkdown(TorchSide torch)
    {
        var md = new StringBuilder();
        md.AppendLine($"# GPU check ({Mode})").AppendLine();
        md.AppendLine($"Written {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC by `ddpo gpu-check`.").AppendLine();
        md.AppendLine("## Environment").AppendLine();
        md.AppendLine("| | ours (TorchSharp) | PyTorch |").AppendLine("|---|---|---|");
        foreach (var key in Environment.Keys.Concat(torch.Environment.Keys).Distinct())
        {
            md.AppendLine($"| {key} | {Cell(Environment.GetValueOrDefault(key))} | {Cell(torch.Environment.GetValueOrDefault(key))} |");
        }
        md.AppendLine().AppendLine($"## Correctness on {Environment.GetValueOrDefault("device", "?")}: {(CorrectnessPassed ? "PASS" : "FAIL")}").AppendLine();
        md.AppendLine("fp32 against the PyTorch fixtures (pass: every element within tolerance + 1e-4 |expected|); fp16/bf16 against fp32 on the same device (reported).").AppendLine();
        md.AppendLine("| fixture | output | dtype | against | max abs error | relative | tolerance | result |").AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in Correctness)
        {
            md.AppendLine($"| {r.Fixture} | {r.Output} | {r.DType} | {r.Reference} | {F(r.MaxAbsError, "E2")} | {F(r.RelativeError, "E2")} | " +
                $"{(r.Tolerance is { } t ? F(t, "E1") : "")} | {(r.Passed switch { true => "pass", false => "**FAIL**", _ => "reported" })} |");
        }
        md.AppendLine().AppendLine("## fp16 training health (LoRA gradients of one DDPO-IS micro-step, same weights and batch)").AppendLine();
        md.AppendLine("| variant | grad norm | rel. error vs fp32 | zero elements | finite |").AppendLine("|---|---|---|---|---|");
        foreach (var h in Health)
        {
            md.AppendLine($"| {h.Variant} | {F(h.GradNorm, "E3")} | {F(h.RelativeError, "E2")} | {F(h.ZeroFraction * 100, "F1")}% | {(h.Finite ? "yes" : "**no**")} |");
        }
        md.AppendLine().AppendLine("## Speed (same configs, random weights; median ms per call)").AppendLine();
        if (torch.Skipped is { } skipped) md.AppendLine($"PyTorch side skipped: {skipped}").AppendLine();
        bool earlier = Mode == "full";
        // The first seven columns and the last line are those of tools/cpu/side_by_side.sh (issue 25), so the figures
        // of both compare at a glance; GFLOP from our TFLOP/s where the row counts it; no GPU peak is derived yet.
        md.AppendLine("| row | ours ms | PyTorch ms | PyTorch/ours | GFLOP/call | GFLOP/s | % of peak | what |" + (earlier ? " earlier PyTorch H200 ms |" : "") + " ours: details | PyTorch: details |");
        md.AppendLine("|---|---|---|---|---|---|---|---|" + (earlier ? "---|" : "") + "---|---|");
        var ratios = new List<double>();
        foreach (var key in SpeedKeys(torch))
        {
            var ours = Speed.FirstOrDefault(r => r.Key == key);
            bool hasTheirs = torch.Rows.TryGetValue(key, out var theirs);
            string ratio = ours is not null && hasTheirs ? F(theirs.Ms / ours.Ms, "F2") : "—";
            string early = earlier ? (EarlierH200PyTorchMs.TryGetValue(key, out var e) ? $" {F(e)} |" : " |") : "";
            if (ours is not null && hasTheirs) ratios.Add(theirs.Ms / ours.Ms);
            bool counted = ours?.Extra.ContainsKey("tflops") == true;
            string gflop = counted ? F(ours!.Extra["tflops"] * ours.Ms, "F1") : "—";
            string gflops = counted ? F(ours!.Extra["tflops"] * 1000, "F0") : "—";
            md.AppendLine($"| {key} | {(ours is null ? "—" : F(ours.Ms, "F1"))} | {(hasTheirs ? F(theirs.Ms, "F1") : "—")} | {ratio} | {gflop} | {gflops} | — | " +
                $"{ours?.What ?? theirs.What} |{early} {ExtraText(ours?.Extra)} | {(hasTheirs ? ExtraText(theirs.Extra) : "")} |");
        }
        md.AppendLine().AppendLine(ratios.Count > 0
            ? $"min ratio {ratios.Min().ToString("F2", CultureInfo.InvariantCulture)} over {ratios.Count} rows"
            : "min ratio - over 0 rows");
        var errors = Errors.Concat(torch.Errors.Select(e => "pytorch: " + e)).ToList();
        if (errors.Count > 0 || Notes.Count > 0)
        {
            md.AppendLine().AppendLine("## Errors and notes").AppendLine();
            foreach (var e in errors) md.AppendLine($"- error: {Cell(e)}");
            foreach (var n in Notes) md.AppendLine($"- {Cell(n)}");
        }
        return md.ToString();
    }

    private static string Cell(string? text) => (text ?? "").Replace("|", "\\|").Replace("\n", " ").Replace("\r", "");
}
