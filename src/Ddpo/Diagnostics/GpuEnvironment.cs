using System.Runtime.InteropServices;
using Ddpo.Runtime;
using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>What our process runs on: GPU, driver, CUDA, the libtorch it loaded (path and version), .NET, TorchSharp.</summary>
internal static class GpuEnvironment
{
    /// <summary>Collects the facts as name/value pairs (missing facts are left out or say why).</summary>
    public static Dictionary<string, string> Describe(Device device)
    {
        var env = new Dictionary<string, string>
        {
            ["device"] = device.ToString(),
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
            ["os"] = RuntimeInformation.OSDescription,
            ["torchsharp"] = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString() ?? "?",
            ["cpu_threads"] = get_num_threads().ToString(),
        };
        foreach (var variable in new[] { "LD_LIBRARY_PATH", TorchRuntime.LibTorchEnvironmentVariable, "CUDA_VISIBLE_DEVICES" })
        {
            if (System.Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value) env[variable] = value;
        }
        if (TorchRuntime.LoadedLibTorch() is { } path) env["libtorch_path"] = path;
        env["libtorch_version"] = LibTorchVersion(env.GetValueOrDefault("libtorch_path"));
        try
        {
            env["cuda_available"] = cuda.is_available().ToString().ToLowerInvariant();
            if (cuda.is_available())
            {
                env["cuda_device_count"] = cuda.device_count().ToString();
                env["cudnn_available"] = cuda.is_cudnn_available().ToString().ToLowerInvariant();
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            env["cuda_available"] = $"false ({e.Message})";
        }
        foreach (var (key, value) in CudaPerformance.Describe()) env[key] = value;
        if (Nvml.TryGet() is { } nvml)
        {
            int index = Math.Max(0, (int)device.index);
            if (nvml.Name(index) is { } name) env["gpu"] = name;
            if (nvml.DriverVersion() is { } driver) env["driver"] = driver;
            if (nvml.CudaDriverVersion() is { } cudaVersion) env["cuda_driver_api"] = cudaVersion;
            if (nvml.TotalBytes(index) is { } total) env["gpu_memory_gib"] = (total / (double)(1L << 30)).ToString("F1");
        }
        else
        {
            env["gpu"] = "none (no NVIDIA driver: libnvidia-ml.so.1 not found)";
        }
        return env;
    }

    /// <summary>
    /// libtorch's version: PyTorch's <c>torch/version.py</c> beside a <c>torch/lib</c> folder, or the version of the
    /// NuGet package folder (…/libtorch-cpu-linux-x64/2.10.0/…) the library came from.
    /// </summary>
    public static string LibTorchVersion(string? libraryPath)
    {
        if (libraryPath is null) return "unknown (no libtorch mapped yet)";
        var lib = Path.GetDirectoryName(libraryPath)!;
        var versionPy = Path.Combine(Path.GetDirectoryName(lib) ?? lib, "version.py");
        if (File.Exists(versionPy))
        {
            var line = File.ReadLines(versionPy).FirstOrDefault(l => l.StartsWith("__version__", StringComparison.Ordinal));
            if (line is not null) return line.Split('=', 2)[1].Trim().Trim('\'', '"') + " (PyTorch)";
        }
        var parts = libraryPath.Split(Path.DirectorySeparatorChar);
        int package = Array.FindIndex(parts, p => p.StartsWith("libtorch-", StringComparison.Ordinal));
        return package >= 0 && package + 1 < parts.Length ? $"{parts[package + 1]} ({parts[package]} package)" : "unknown";
    }
}
