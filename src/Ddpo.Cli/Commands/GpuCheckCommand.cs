using System.CommandLine;
using Ddpo.Diagnostics;

namespace Ddpo.Cli.Commands;

/// <summary>
/// <c>ddpo gpu-check --out DIR --fixtures DIR [--smoke] [--torch-results FILE]</c>: our half of the GPU check
/// (<c>tools/gpu/check.sh</c> runs PyTorch's half first and passes its results here to be merged).
/// </summary>
internal static class GpuCheckCommand
{
    /// <summary>Exit code when a correctness row failed or a section or row could not run (the files are still written).</summary>
    public const int ChecksFailed = 4;

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "folder for gpu-check.json and gpu-check.md", Required = true };
        var fixtures = new Option<string>("--fixtures") { Description = "a copy of ../shared/fixtures (the reference fixtures)", Required = true };
        var smoke = new Option<bool>("--smoke") { Description = "tiny sizes: seconds per row, runs on a CPU (the test of the check itself)" };
        var torchResults = new Option<string?>("--torch-results") { Description = "torch_bench.py's JSON, merged into the tables" };
        var sections = new Option<string>("--sections") { Description = "comma-separated: correctness, health, speed", DefaultValueFactory = _ => string.Join(",", GpuCheckOptions.AllSections) };
        var halves = new Option<string>("--half-dtypes") { Description = "half precisions compared with fp32 on the fixtures (comma-separated, or none)", DefaultValueFactory = _ => "fp16,bf16" };
        var common = new CommonOptions();
        var command = new Command("gpu-check", "Check correctness on a device against the reference fixtures and time us on Stable Diffusion 1.4 sizes (random weights)")
        {
            output, fixtures, smoke, torchResults, sections, halves,
        };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            bool isSmoke = parse.GetValue(smoke);
            TorchSharp.torch.Device device;
            try
            {
                (device, _) = common.Resolve(parse);
            }
            catch (ArgumentException e) when (e.Message.Contains("CUDA is not available", StringComparison.Ordinal))
            {
                // A GPU session is short: leave what we know (which libtorch loaded, from where) in the report too.
                var failed = new GpuCheckReport { Mode = isSmoke ? "smoke" : "full", TorchResultsPath = parse.GetValue(torchResults) };
                failed.Environment = GpuEnvironment.Describe(TorchSharp.torch.CPU);
                failed.Errors.Add(e.Message);
                failed.Write(parse.GetValue(output)!);
                throw;
            }
            if (!isSmoke && device.type != TorchSharp.DeviceType.CUDA)
            {
                throw new ArgumentException($"gpu-check: the full sizes (Stable Diffusion 1.4) need --device cuda; on {device} pass --smoke");
            }
            var report = GpuCheck.Run(new GpuCheckOptions
            {
                OutDirectory = parse.GetValue(output)!,
                FixturesDirectory = parse.GetValue(fixtures)!,
                Device = device,
                Smoke = isSmoke,
                TorchResults = parse.GetValue(torchResults),
                HalfTypes = parse.GetValue(halves)!.Trim() == "none" ? [] : parse.GetValue(halves)!
                    .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Runtime.TorchRuntime.ParseDType).ToList(),
                Sections = parse.GetValue(sections)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(),
            }, Console.WriteLine);
            Console.WriteLine($"wrote {Path.Combine(parse.GetValue(output)!, GpuCheckReport.MarkdownName)} and {GpuCheckReport.JsonName}; " +
                $"correctness {(report.CorrectnessPassed ? "PASS" : "FAIL")}, {report.Errors.Count} error(s)");
            return report.CorrectnessPassed && report.Errors.Count == 0 ? 0 : ChecksFailed;
        });
        return command;
    }
}
