using Ddpo.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>
/// The check <c>ddpo train</c> (and <see cref="DdpoRun"/>) runs on its device before the first epoch: float32
/// gradients against float64 (<see cref="GradientCheck"/>). On the CPU, where libtorch's own kernels fail it and the
/// profile allows, it switches to convolutions without oneDNN (<see cref="CpuKernels.UseIm2colKernels"/>) and checks again; where
/// the gradients are still wrong it refuses with <see cref="GradientCheckFailedException"/>.
/// </summary>
internal static class GradientSelfCheck
{
    /// <summary>Float32 runs per case before training (a wrong kernel was wrong in 5 of 8 runs where it was found).</summary>
    public const int TrainingRepetitions = 3;

    private static readonly Dictionary<string, string> Passed = [];

    /// <summary>
    /// <see cref="Ensure"/> once per process and device: what is checked (libtorch, its kernels, this CPU or GPU) does
    /// not change within a process. A failure is not remembered: it throws again.
    /// </summary>
    public static string EnsureOnce(Device device)
    {
        var key = device.ToString();
        lock (Passed)
        {
            if (Passed.TryGetValue(key, out var line) && GradientCheck.FaultForTests is null) return line + " (checked earlier in this process)";
            line = Ensure(device);
            Passed[key] = line;
            return line;
        }
    }

    /// <summary>Checks <paramref name="device"/>; returns the line to log, or throws <see cref="GradientCheckFailedException"/>.</summary>
    public static string Ensure(Device device, int repetitions = TrainingRepetitions)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        var (report, failedDefault) = Run(device, repetitions);
        string switched = failedDefault is null ? "" : $"the kernels in force failed it ({failedDefault.DescribeFailures()}); switched to im2col + BLAS convolutions; ";
        if (!report.Passed) throw new GradientCheckFailedException(device, report, switched);
        double worst = report.Rows.Max(r => r.WorstError);
        return $"gradient check on {device.type.ToString().ToLowerInvariant()}: {switched}{report.Rows.Count} cases x {repetitions} runs within {GradientCheck.Tolerance:0e0} of float64 " +
            $"(worst {GradientCheckReport.Format(worst)}; {started.Elapsed.TotalSeconds:F1} s){(device.type == DeviceType.CPU ? $"; kernels: {CpuKernels.Describe()}" : "")}";
    }

    /// <summary>
    /// Runs the check; where it fails on the CPU with libtorch's own kernels and the profile allows (not
    /// <see cref="CpuKernelProfile.Default"/>), switches to the im2col kernels and runs it again. Returns the last report,
    /// and the failed one of libtorch's kernels when it switched (null otherwise).
    /// </summary>
    public static (GradientCheckReport Report, GradientCheckReport? FailedDefault) Run(Device device, int repetitions)
    {
        using var check = new GradientCheck(device);
        var report = check.Run(repetitions);
        if (report.Passed || device.type != DeviceType.CPU || CpuKernels.Requested == CpuKernelProfile.Default || CpuKernels.Im2colKernelsActive)
        {
            return (report, null);
        }
        CpuKernels.UseIm2colKernels();
        return (check.Run(repetitions), report);
    }
}

/// <summary>
/// Training was refused because float32 gradients on this device are wrong (they differ from float64 ones of the same
/// computation by more than 1e-4). The message names the failing cases and what to try; <c>ddpo train</c> exits with 3.
/// </summary>
public sealed class GradientCheckFailedException : Exception
{
    internal GradientCheckFailedException(Device device, GradientCheckReport report, string switched)
        : base($"training refused: float32 gradients on this {device.type.ToString().ToLowerInvariant()} are wrong ({switched}{report.DescribeFailures()}). " +
               $"CPU: {CpuFeatures.Current}; kernels: {CpuKernels.Describe()}. " +
               "Try: DDPO_CPU_KERNELS=safe or im2col (or --cpu-kernels safe|im2col) in a new process, so that oneDNN and ATen start with AVX2 kernels; " +
               "OMP_NUM_THREADS=1; another machine or --device cuda. `ddpo doctor` checks this machine in seconds; docs/cpu-gradients.md explains.")
    {
        Report = report;
    }

    /// <summary>What the check measured (internal: the CLI's doctor prints it).</summary>
    internal GradientCheckReport Report { get; }
}
