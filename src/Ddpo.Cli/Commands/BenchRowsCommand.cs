using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ddpo.Benchmarks;
using Ddpo.Pipelines;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary>
/// <c>ddpo bench rows</c>: our half of the side-by-side speed table (tools/cpu/side_by_side.sh). Alone it prints the
/// per-call medians (and <c>--json</c>); with <c>--serve</c> it answers a line protocol on stdin/stdout so that the
/// driver can interleave our calls with PyTorch's, one call each per repeat, in one process pair:
/// <c>setup ROW</c> (build, warm up, write the inputs to <c>--inputs-dir/ROW.safetensors</c>; answers
/// <c>@@ ok {json}</c>), <c>time ROW</c> (one call; <c>@@ ms X</c>), <c>drop ROW</c>, <c>quit</c>. Replies start with
/// <c>@@ </c>, so that anything else a library prints on stdout is ignored by the driver.
/// </summary>
internal static class BenchRowsCommand
{
    /// <summary>Builds the sub-command.</summary>
    public static Command Create()
    {
        var rows = new Option<string>("--rows") { Description = $"comma-separated rows (default all: {string.Join(",", SideBySideRows.Names)})", DefaultValueFactory = _ => string.Join(",", SideBySideRows.Names) };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 1, Description = "untimed calls per row after setup" };
        var repeats = new Option<int>("--repeats") { DefaultValueFactory = _ => 5, Description = "timed calls per row (median)" };
        var json = new Option<string?>("--json") { Description = "write the per-call medians and FLOP counts here" };
        var inputsDir = new Option<string?>("--inputs-dir") { Description = "write each row's inputs to DIR/ROW.safetensors (for the PyTorch side)" };
        var fixtures = new Option<string>("--fixtures") { DefaultValueFactory = _ => Path.Combine("tests", "Ddpo.Tests", "Fixtures", "refenv"), Description = "folder with the tiny vae, sd3_transformer and flux_transformer fixtures" };
        var model = new Option<string?>("--model") { Description = "the built-in model folder (default: the installed one)" };
        var serve = new Option<bool>("--serve") { Description = "answer setup/time/drop/quit lines on stdin (driven by tools/cpu/side_by_side.py)" };
        var common = new CommonOptions();
        var command = new Command("rows", "Time the side-by-side rows (CPU, float32): per-call medians, FLOPs, GFLOP/s")
            { rows, warmup, repeats, json, inputsDir, fixtures, model, serve };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            common.Resolve(parse);
            var builtin = parse.GetValue(model) ?? BuiltinModel.Directory;
            var fixtureDir = parse.GetValue(fixtures)!;
            int warm = parse.GetValue(warmup);
            if (parse.GetValue(serve)) return Serve(builtin, fixtureDir, warm, parse.GetValue(inputsDir));
            return RunAll(parse.GetValue(rows)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                builtin, fixtureDir, warm, parse.GetValue(repeats), parse.GetValue(json), parse.GetValue(inputsDir));
        });
        return command;
    }

    private static SideBySideRow Setup(string name, string builtin, string fixtures, int warmup, string? inputsDir)
    {
        var row = SideBySideRows.Create(name, builtin, fixtures);
        if (inputsDir is not null)
        {
            Directory.CreateDirectory(inputsDir);
            SideBySideRows.WriteInputs(row, Path.Combine(inputsDir, name + ".safetensors"));
        }
        for (int i = 0; i < warmup; i++) row.Call();
        return row;
    }

    private static object Describe(SideBySideRow row, string? inputsDir) => new
    {
        name = row.Name,
        description = row.Description,
        flops = row.Flops,
        flop_formula = row.FlopFormula,
        inputs = inputsDir is null ? null : Path.GetFullPath(Path.Combine(inputsDir, row.Name + ".safetensors")),
    };

    private static int RunAll(string[] names, string builtin, string fixtures, int warmup, int repeats, string? json, string? inputsDir)
    {
        var results = new List<object>();
        var table = new Table().AddColumns("row", "ms/call (median)", "GFLOP/call", "GFLOP/s");
        foreach (var name in names)
        {
            using var row = Setup(name, builtin, fixtures, warmup, inputsDir);
            double ms = MedianTimer.Milliseconds(row.Call, 0, repeats);
            table.AddRow(name, $"{ms:F2}", $"{row.Flops / 1e9:F3}", $"{row.Flops / 1e6 / ms:F1}");
            results.Add(new { row = Describe(row, inputsDir), median_ms = ms, repeats, warmup });
        }
        AnsiConsole.Write(table);
        if (json is not null)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(new { threads = TorchSharp.torch.get_num_threads(), rows = results },
                new JsonSerializerOptions { WriteIndented = true }));
        }
        return 0;
    }

    private static int Serve(string builtin, string fixtures, int warmup, string? inputsDir)
    {
        var rows = new Dictionary<string, SideBySideRow>();
        void Reply(string text) { Console.Out.WriteLine("@@ " + text); Console.Out.Flush(); }
        Reply("ready");
        string? line;
        while ((line = Console.In.ReadLine()) is not null)
        {
            var parts = line.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parts.Length == 0) continue;
            try
            {
                switch (parts[0])
                {
                    case "quit":
                        foreach (var r in rows.Values) r.Dispose();
                        Reply("bye");
                        return 0;
                    case "setup":
                        rows[parts[1]] = Setup(parts[1], builtin, fixtures, warmup, inputsDir);
                        Reply("ok " + JsonSerializer.Serialize(Describe(rows[parts[1]], inputsDir)));
                        break;
                    case "time":
                        Reply("ms " + MedianTimer.Milliseconds(rows[parts[1]].Call, 0, 1).ToString("R", CultureInfo.InvariantCulture));
                        break;
                    case "drop":
                        if (rows.Remove(parts[1], out var dropped)) dropped.Dispose();
                        GC.Collect();
                        Reply("ok");
                        break;
                    default:
                        Reply($"error unknown command '{parts[0]}' (setup ROW, time ROW, drop ROW, quit)");
                        break;
                }
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or KeyNotFoundException or IndexOutOfRangeException or InvalidOperationException)
            {
                Reply("error " + e.Message.ReplaceLineEndings(" "));
            }
        }
        return 0;
    }
}
