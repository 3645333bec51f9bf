using System.CommandLine;
using System.Globalization;
using Ddpo.Diagnostics;
using Ddpo.Runtime;
using Spectre.Console;
using static TorchSharp.torch;

namespace Ddpo.Cli.Commands;

/// <summary>
/// <c>ddpo doctor</c>: checks in seconds whether training can be trusted here: float32 gradients of every layer type,
/// a tiny UNet and VAE decoder and the DDPO loss against float64, several times; libtorch, CPU features, threads and
/// the kernels chosen. Exit 0 when they are right, 3 when not (the same check <c>ddpo train</c> runs first).
/// </summary>
internal static class DoctorCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var repeats = new Option<int>("--repeats") { Description = "float32 runs per case (a wrong kernel was wrong in 5 of 8 runs where it was found)", DefaultValueFactory = _ => 5 };
        var common = new CommonOptions();
        var command = new Command("doctor", "Check this machine: float32 gradients against float64 (conv, norms, attention, a tiny UNet and VAE, the DDPO loss), libtorch, CPU features, kernels")
        {
            repeats,
        };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            int n = parse.GetValue(repeats);
            if (n < 1) throw new ArgumentException($"--repeats must be >= 1, got {n}");
            var (device, _) = common.Resolve(parse);
            Console.WriteLine($"cpu:      {CpuFeatures.Current}");
            Console.WriteLine($"libtorch: {TorchRuntime.LoadedLibTorch() ?? "(not found in /proc/self/maps)"}");
            Console.WriteLine($"threads:  {get_num_threads()} (cores: {Environment.ProcessorCount})");
            Console.WriteLine($"device:   {device}");
            Console.WriteLine($"kernels:  {CpuKernels.Requested?.ToString().ToLowerInvariant() ?? "auto"}: {CpuKernels.Describe()}");
            var (report, failedDefault) = GradientSelfCheck.Run(device, n);
            if (failedDefault is not null)
            {
                Print(failedDefault);
                Console.WriteLine("libtorch's own kernels failed; again with the safe kernels (what `ddpo train` does here):");
                Console.WriteLine($"kernels:  safe: {CpuKernels.Describe()}");
            }
            Print(report);
            if (report.Passed)
            {
                Console.WriteLine($"training here can be trusted: yes (every case within {GradientCheck.Tolerance:0e0} of float64 in all {n} runs)");
                return 0;
            }
            Console.WriteLine($"training here can be trusted: NO: {report.DescribeFailures()}");
            Console.WriteLine($"`ddpo train` refuses to run here (exit {CliApp.WrongGradients}). Try a new process with --cpu-kernels safe " +
                $"(or {CpuKernels.EnvironmentVariable}=safe), then OMP_NUM_THREADS=1, another machine or --device cuda; see docs/cpu-gradients.md.");
            return CliApp.WrongGradients;
        });
        return command;
    }

    private static void Print(GradientCheckReport report)
    {
        // Plain text, one row per line: readable in a log file as on a terminal.
        Console.WriteLine($"  {"case",-52} {"worst error",11} {"wrong runs",10} {"same bits",9} {"time",7}");
        foreach (var r in report.Rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {r.Name,-52} {GradientCheckReport.Format(r.WorstError),11} {r.WrongRuns,4} of {r.Runs,-3} {(r.Repeatable ? "yes" : "NO"),9} {r.Seconds,6:F2}s"));
        }
    }
}
