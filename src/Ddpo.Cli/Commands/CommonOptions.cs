using System.CommandLine;
using Ddpo.Runtime;
using static TorchSharp.torch;

namespace Ddpo.Cli.Commands;

/// <summary>Options shared by the commands that run models: device, dtype and where CUDA libtorch lives.</summary>
internal sealed class CommonOptions
{
    /// <summary><c>--device cpu|cuda|cuda:N|auto</c>.</summary>
    public Option<string> Device { get; } = new("--device") { Description = "cpu, cuda, cuda:N or auto", DefaultValueFactory = _ => "cpu" };
    /// <summary><c>--dtype auto|fp32|fp16|bf16</c> of the frozen weights.</summary>
    public Option<string> DType { get; } = new("--dtype") { Description = "auto, fp32, fp16 or bf16 for the model weights (auto: fp16 on CUDA, fp32 on the CPU)", DefaultValueFactory = _ => "auto" };
    /// <summary><c>--libtorch DIR</c>: an installed PyTorch's torch/lib to take CUDA from.</summary>
    public Option<string?> LibTorch { get; } = new("--libtorch") { Description = $"PyTorch's torch/lib folder to load CUDA libtorch from (or set {TorchRuntime.LibTorchEnvironmentVariable})" };
    /// <summary><c>--threads N</c>: CPU threads for TorchSharp.</summary>
    public Option<int?> Threads { get; } = new("--threads") { Description = "CPU threads for tensor math (default: all cores)" };
    /// <summary><c>--cpu-kernels auto|default|safe</c>: which CPU kernels libtorch runs (see docs/cpu-gradients.md).</summary>
    public Option<string?> CpuKernels { get; } = new("--cpu-kernels") { Description = $"auto, default, safe or im2col: libtorch's CPU kernels (default: {Runtime.CpuKernels.EnvironmentVariable}, else auto: safe on AMD Zen 5)" };

    /// <summary>Adds the options to a command.</summary>
    public void AddTo(Command command)
    {
        command.Add(Device);
        command.Add(DType);
        command.Add(LibTorch);
        command.Add(Threads);
        command.Add(CpuKernels);
    }

    /// <summary>Loads libtorch if asked, sets threads, and resolves the device and dtype.</summary>
    public (Device Device, ScalarType DType) Resolve(ParseResult parse, string? deviceOverride = null)
    {
        ApplyRuntime(parse);
        var device = TorchRuntime.ResolveDevice(deviceOverride ?? parse.GetValue(Device)!);
        // TF32, cuDNN autotuning, fused attention: libtorch's global switches, set once on CUDA (see CudaPerformance).
        if (device.type == TorchSharp.DeviceType.CUDA) Console.Error.WriteLine($"cuda: {CudaPerformance.Configure(device)}");
        return (device, TorchRuntime.ResolveDType(parse.GetValue(DType)!, device));
    }

    /// <summary>Loads libtorch from <c>--libtorch</c> if given, chooses its CPU kernels and sets <c>--threads</c>.</summary>
    public void ApplyRuntime(ParseResult parse)
    {
        TorchRuntime.UseLibTorchFrom(parse.GetValue(LibTorch));
        // Before the first tensor: oneDNN and ATen read their instruction-set limits once.
        Runtime.CpuKernels.Apply(ExplicitCpuKernels(parse));
        var threads = parse.GetValue(Threads);
        if (threads is { } n)
        {
            if (n < 1) throw new ArgumentException($"--threads must be >= 1, got {n}");
            set_num_threads(n);
        }
    }

    /// <summary>The <c>--cpu-kernels</c> profile when given; null: the environment or auto.</summary>
    public CpuKernelProfile? ExplicitCpuKernels(ParseResult parse) =>
        parse.GetValue(CpuKernels) is { } value ? Runtime.CpuKernels.Parse(value) : null;

    /// <summary>The <c>--device</c> value when given on the command line; null when left at its default (the config decides).</summary>
    public string? ExplicitDevice(ParseResult parse) => parse.GetResult(Device) is { Implicit: false } ? parse.GetValue(Device) : null;

    /// <summary>The <c>--dtype</c> value when given on the command line; null when left at its default (the config decides).</summary>
    public string? ExplicitDType(ParseResult parse) => parse.GetResult(DType) is { Implicit: false } ? parse.GetValue(DType) : null;
}
