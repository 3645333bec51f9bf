using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Runtime;

/// <summary>
/// libtorch's global speed switches for CUDA, as PyTorch scripts set them: TF32 tensor-core math for float32
/// matrix products and convolutions (<c>torch.backends.cuda.matmul.allow_tf32</c>, <c>torch.backends.cudnn.allow_tf32</c>),
/// cuDNN's autotuner (<c>torch.backends.cudnn.benchmark</c>: TorchSharp 0.107 does not expose it, so it is set on
/// libtorch's <c>at::Context</c> directly), and the fused flash / memory-efficient attention kernels behind
/// <c>scaled_dot_product_attention</c>. On by default on CUDA; <c>DDPO_TF32=0</c> and <c>DDPO_CUDNN_BENCHMARK=0</c>
/// turn the first two off (bit-for-bit comparisons with fp32 references, or shapes that change every call).
/// </summary>
internal static unsafe class CudaPerformance
{
    /// <summary>Environment variable: 0 keeps float32 matmuls and convolutions in full fp32 on CUDA.</summary>
    public const string Tf32Variable = "DDPO_TF32";

    /// <summary>Environment variable: 0 turns cuDNN's per-shape algorithm search off.</summary>
    public const string BenchmarkVariable = "DDPO_CUDNN_BENCHMARK";

    /// <summary>
    /// Applies the settings (from the environment, default on) when <paramref name="device"/> is CUDA; nothing on
    /// the CPU, where none of them has an effect. Returns what was set, for the log.
    /// </summary>
    public static string Configure(Device device)
    {
        if (device.type != DeviceType.CUDA) return "cpu: no CUDA settings";
        bool tf32 = Enabled(Tf32Variable), bench = Enabled(BenchmarkVariable);
        SetTf32(tf32);
        bool benchSet = TrySetCudnnBenchmark(bench);
        backends.cuda.enable_flash_sdp(true);
        return $"tf32 {(tf32 ? "on" : "off")}, cudnn.benchmark {(benchSet ? (bench ? "on" : "off") : "not settable")}, flash SDP on";
    }

    private static bool Enabled(string variable) =>
        Environment.GetEnvironmentVariable(variable)?.Trim() is not ("0" or "false" or "off" or "no");

    /// <summary>Sets TF32 for cuBLAS float32 matmuls and for cuDNN convolutions (libtorch's global context).</summary>
    public static void SetTf32(bool allow)
    {
        backends.cuda.matmul.allow_tf32 = allow;
        backends.cudnn.allow_tf32 = allow;
    }

    /// <summary>Whether cuBLAS float32 matmuls may use TF32.</summary>
    public static bool MatmulTf32 => backends.cuda.matmul.allow_tf32;

    /// <summary>Whether cuDNN convolutions may use TF32.</summary>
    public static bool CudnnTf32 => backends.cudnn.allow_tf32;

    /// <summary>
    /// Sets <c>at::globalContext().setBenchmarkCuDNN(on)</c> through libtorch's exported C++ symbols (the Itanium ABI
    /// passes the object as the first argument). Returns false where the loaded libtorch lacks them.
    /// </summary>
    public static bool TrySetCudnnBenchmark(bool on)
    {
        if (ContextFunctions() is not { } f) return false;
        ((delegate* unmanaged<IntPtr, byte, void>)f.Set)(((delegate* unmanaged<IntPtr>)f.Global)(), on ? (byte)1 : (byte)0);
        return true;
    }

    /// <summary>cuDNN benchmark mode as libtorch holds it, or null where it cannot be read.</summary>
    public static bool? CudnnBenchmark
    {
        get
        {
            if (ContextFunctions() is not { } f) return null;
            return ((delegate* unmanaged<IntPtr, byte>)f.Get)(((delegate* unmanaged<IntPtr>)f.Global)()) != 0;
        }
    }

    private static (IntPtr Global, IntPtr Set, IntPtr Get)? _functions;
    private static bool _looked;

    private static (IntPtr Global, IntPtr Set, IntPtr Get)? ContextFunctions()
    {
        if (_looked) return _functions;
        _looked = true;
        _ = get_num_threads(); // makes TorchSharp load libtorch first
        var path = TorchRuntime.LoadedLibTorch();
        if (path is null || !NativeLibrary.TryLoad(path, out var lib)) return null;
        if (NativeLibrary.TryGetExport(lib, "_ZN2at13globalContextEv", out var global)
            && NativeLibrary.TryGetExport(lib, "_ZN2at7Context17setBenchmarkCuDNNEb", out var set)
            && NativeLibrary.TryGetExport(lib, "_ZNK2at7Context14benchmarkCuDNNEv", out var get))
        {
            _functions = (global, set, get);
        }
        return _functions;
    }

    /// <summary>The current values, for reports.</summary>
    public static Dictionary<string, string> Describe()
    {
        var d = new Dictionary<string, string>();
        try
        {
            d["tf32_matmul"] = MatmulTf32.ToString().ToLowerInvariant();
            d["tf32_cudnn"] = CudnnTf32.ToString().ToLowerInvariant();
            d["cudnn_benchmark"] = CudnnBenchmark?.ToString().ToLowerInvariant() ?? "unknown";
            d["flash_sdp_enabled"] = backends.cuda.flash_sdp_enabled().ToString().ToLowerInvariant();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            d["cuda_settings"] = $"unreadable: {e.Message}";
        }
        return d;
    }
}
