using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Runtime;

/// <summary>
/// Chooses the compute device and loads CUDA either from TorchSharp's CUDA packages or from an
/// installed PyTorch's <c>torch/lib</c> folder (<c>--libtorch DIR</c> or <c>DDPO_LIBTORCH</c>).
/// </summary>
public static class TorchRuntime
{
    /// <summary>The environment variable naming a PyTorch <c>torch/lib</c> folder to take CUDA from.</summary>
    public const string LibTorchEnvironmentVariable = "DDPO_LIBTORCH";

    private static readonly string[] PreloadOrder =
    [
        "libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so",
    ];

    private static bool _preloaded;

    /// <summary>
    /// Loads libtorch from <paramref name="libTorchDirectory"/> (or <see cref="LibTorchEnvironmentVariable"/>)
    /// before TorchSharp does, so that TorchSharp binds to it. Call before the first tensor is made.
    /// </summary>
    public static void UseLibTorchFrom(string? libTorchDirectory)
    {
        var dir = libTorchDirectory ?? Environment.GetEnvironmentVariable(LibTorchEnvironmentVariable);
        if (string.IsNullOrEmpty(dir) || _preloaded) return;
        if (!Directory.Exists(dir))
        {
            throw new ArgumentException($"--libtorch / {LibTorchEnvironmentVariable}: folder '{dir}' does not exist (expected PyTorch's torch/lib)");
        }
        if (!File.Exists(Path.Combine(dir, "libtorch.so")))
        {
            throw new ArgumentException($"--libtorch / {LibTorchEnvironmentVariable}: '{dir}' holds no libtorch.so (expected PyTorch's torch/lib)");
        }
        foreach (var lib in PreloadOrder)
        {
            var path = Path.Combine(dir, lib);
            if (File.Exists(path)) NativeLibrary.Load(path);
        }
        _preloaded = true;
    }

    /// <summary>
    /// Resolves <c>cpu</c>, <c>cuda</c>, <c>cuda:N</c> or <c>auto</c> to a device. Asking for CUDA where
    /// none is available is an <see cref="ArgumentException"/> that says how to get it.
    /// </summary>
    public static Device ResolveDevice(string spec)
    {
        spec = spec.Trim().ToLowerInvariant();
        if (spec == "cpu") return CPU;
        if (spec == "auto") return CudaAvailable() ? CUDA : CPU;
        if (spec == "cuda" || spec.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!CudaAvailable())
            {
                throw new ArgumentException(
                    $"--device {spec}: CUDA is not available. Install PyTorch with CUDA and pass --libtorch <site-packages>/torch/lib " +
                    $"(or set {LibTorchEnvironmentVariable}), or build with a TorchSharp CUDA package (see README), or use --device cpu.");
            }
            return new Device(spec);
        }
        throw new ArgumentException($"--device: '{spec}' is not a device (expected cpu, cuda, cuda:N or auto)");
    }

    private static bool CudaAvailable()
    {
        try { return cuda.is_available(); }
        catch (Exception) { return false; }
    }

    /// <summary>Parses <c>fp32</c>/<c>float32</c>, <c>fp16</c>/<c>float16</c>/<c>half</c>, <c>bf16</c>/<c>bfloat16</c>.</summary>
    public static ScalarType ParseDType(string name) => name.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" or "float" or "f32" => ScalarType.Float32,
        "fp16" or "float16" or "half" or "f16" => ScalarType.Float16,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        _ => throw new ArgumentException($"--dtype: '{name}' is not a dtype (expected auto, fp32, fp16 or bf16)"),
    };

    /// <summary>
    /// The model dtype for <paramref name="name"/> on <paramref name="device"/>: <c>auto</c> is fp16 on CUDA (ddpo-pytorch's
    /// <c>mixed_precision = "fp16"</c>) and fp32 on the CPU (libtorch's CPU fp16 kernels work, but run slower than fp32);
    /// any other name as <see cref="ParseDType"/>.
    /// </summary>
    public static ScalarType ResolveDType(string name, Device device) =>
        name.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase)
            ? (device.type == DeviceType.CUDA ? ScalarType.Float16 : ScalarType.Float32)
            : ParseDType(name);

    /// <summary>Short name of a dtype (fp32, fp16, bf16).</summary>
    public static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "fp32",
        ScalarType.Float16 => "fp16",
        ScalarType.BFloat16 => "bf16",
        _ => t.ToString(),
    };

    /// <summary>The path of the libtorch_cpu.so (or libtorch.so) mapped into this process, from /proc/self/maps.</summary>
    public static string? LoadedLibTorch()
    {
        try
        {
            var paths = File.ReadLines("/proc/self/maps")
                .Select(l => l.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length == 6).Select(f => f[5].Trim()).Distinct().ToList();
            return paths.FirstOrDefault(p => Path.GetFileName(p) == "libtorch_cpu.so")
                ?? paths.FirstOrDefault(p => Path.GetFileName(p).StartsWith("libtorch", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return null;
        }
    }
}
