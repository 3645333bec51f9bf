using System.Diagnostics;
using Ddpo.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>What <see cref="GpuCheck.Run"/> does.</summary>
internal sealed record GpuCheckOptions
{
    /// <summary>Where gpu-check.json and gpu-check.md go.</summary>
    public required string OutDirectory { get; init; }
    /// <summary>A copy of the reference fixtures folder (../shared/fixtures).</summary>
    public required string FixturesDirectory { get; init; }
    /// <summary>The device to check.</summary>
    public required Device Device { get; init; }
    /// <summary>Tiny sizes (seconds per row on a CPU) instead of Stable Diffusion 1.4's.</summary>
    public bool Smoke { get; init; }
    /// <summary>torch_bench.py's results to merge, or null.</summary>
    public string? TorchResults { get; init; }
    /// <summary>Half precisions compared with fp32 in the correctness section.</summary>
    public IReadOnlyList<ScalarType> HalfTypes { get; init; } = [ScalarType.Float16, ScalarType.BFloat16];
    /// <summary>Sections to run: correctness, health, speed.</summary>
    public IReadOnlySet<string> Sections { get; init; } = new HashSet<string>(AllSections);

    /// <summary>Every section, in the order they run.</summary>
    public static readonly IReadOnlyList<string> AllSections = ["correctness", "health", "speed"];
}

/// <summary>
/// The GPU check: environment, fixture correctness (fp32 against PyTorch's numbers, fp16/bf16 against fp32), fp16
/// gradient health, and our speed on the issue's configs, merged with PyTorch's speed on the same card
/// (<c>tools/gpu/check.sh</c> runs <c>tools/gpu/torch_bench.py</c> first). The report is rewritten after every section.
/// </summary>
internal static class GpuCheck
{
    /// <summary>Runs the check; returns the report (also written to <see cref="GpuCheckOptions.OutDirectory"/>).</summary>
    public static GpuCheckReport Run(GpuCheckOptions o, Action<string> log)
    {
        FixtureParity.CheckFolder(o.FixturesDirectory);
        foreach (var s in o.Sections)
        {
            if (!GpuCheckOptions.AllSections.Contains(s))
            {
                throw new ArgumentException($"--sections: '{s}' is not a section (expected {string.Join(", ", GpuCheckOptions.AllSections)})");
            }
        }
        var sizes = o.Smoke ? GpuCheckSizes.Smoke() : GpuCheckSizes.Full();
        // Random weights and inputs from a fixed seed: two runs of the check measure the same numbers.
        manual_seed(0);
        var report = new GpuCheckReport { Mode = sizes.Name, TorchResultsPath = o.TorchResults };
        log($"cuda settings: {CudaPerformance.Configure(o.Device)}");
        report.Environment = GpuEnvironment.Describe(o.Device);
        report.Environment["check_sizes"] = sizes.Name;
        report.Write(o.OutDirectory);
        var total = Stopwatch.StartNew();

        void Section(string name, Action body)
        {
            if (!o.Sections.Contains(name))
            {
                report.Notes.Add($"section {name} not run (--sections)");
                return;
            }
            var clock = Stopwatch.StartNew();
            log($"{name} ...");
            try
            {
                body();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                report.Errors.Add($"{name}: {e.GetType().Name}: {e.Message}");
                log($"{name} failed: {e.Message}");
            }
            report.Notes.Add($"{name}: {clock.Elapsed.TotalSeconds:F1} s");
            report.Write(o.OutDirectory);
        }

        Section("correctness", () =>
        {
            FixtureParity.Run(o.FixturesDirectory, o.Device, o.HalfTypes, row =>
            {
                report.Correctness.Add(row);
                if (row.Passed == false) log($"  FAIL {row.Fixture}/{row.Output} {row.DType}: max abs error {row.MaxAbsError:E2} > {row.Tolerance:E1}");
            }, log);
            log($"  {report.Correctness.Count(r => r.Passed == true)} of {report.Correctness.Count(r => r.Passed is not null)} fp32 rows within tolerance");
        });
        Section("health", () =>
        {
            foreach (var row in HalfPrecisionHealth.Run(sizes, o.Device))
            {
                report.Health.Add(row);
                log($"  {row.Variant}: grad norm {row.GradNorm:E3}, rel. error {row.RelativeError:E2}, zeros {row.ZeroFraction:P1}");
            }
        });
        Section("speed", () =>
        {
            SpeedSuite.Run(sizes, o.Device, row =>
            {
                report.Speed.Add(row);
                log($"  {row.Key}: {row.Ms:F1} ms");
                report.Write(o.OutDirectory);
            }, (key, e) =>
            {
                report.Errors.Add($"speed {key}: {e.GetType().Name}: {e.Message}");
                log($"  {key} failed: {e.Message}");
            });
        });
        report.Notes.Add($"total: {total.Elapsed.TotalSeconds:F1} s");
        report.Write(o.OutDirectory);
        return report;
    }
}
