using System.Runtime.InteropServices;

namespace Ddpo.Runtime;

/// <summary>Which CPU kernels libtorch runs: its own choice, the safe set, or no oneDNN at all (see <see cref="CpuKernels"/>).</summary>
public enum CpuKernelProfile
{
    /// <summary>The safe set on CPUs known to compute wrong gradients with libtorch's choice (AMD Zen 5), else libtorch's choice; the gradient check can still switch to <see cref="Im2col"/>.</summary>
    Auto,
    /// <summary>libtorch's choice: oneDNN convolutions at the CPU's best ISA, the flash attention kernel.</summary>
    Default,
    /// <summary>
    /// oneDNN and ATen at AVX2, convolutions that take a gradient with their output channels padded to a multiple of 8
    /// (oneDNN's backward-data is wrong otherwise on Zen 5), ATen's flash attention kernel, NNPACK off.
    /// </summary>
    Safe,
    /// <summary>No oneDNN convolution at all (im2col + BLAS), the math attention path, AVX2 kernels in ATen: right everywhere measured, and slower (Zen 5: the built-in UNet's forward 2.8 times).</summary>
    Im2col,
}

/// <summary>
/// Chooses libtorch's CPU kernels. Part of the choice must be made before libtorch initialises (oneDNN's and ATen's
/// instruction sets are read from the environment once, at their first use): <see cref="Apply"/> does that from the
/// CPU's features. The rest are libtorch's global switches, which <see cref="UseSafeKernels"/> can flip at any time
/// (the gradient check does, when libtorch's choice fails it). docs/cpu-gradients.md says why.
/// </summary>
public static class CpuKernels
{
    /// <summary>The environment variable that chooses the profile (auto, default, safe or im2col) where no option does.</summary>
    public const string EnvironmentVariable = "DDPO_CPU_KERNELS";

    private static readonly string[] SafeEnvironment = ["DNNL_MAX_CPU_ISA=AVX2", "ATEN_CPU_CAPABILITY=avx2"];
    private static readonly object Gate = new();
    private static CpuKernelProfile? _requested;
    private static readonly List<string> EnvironmentSet = [];

    /// <summary>
    /// The names of the start-up variables this process set for the safe kernels (not the ones it found set): a
    /// process it starts should choose its own kernels, not inherit these.
    /// </summary>
    internal static IReadOnlyList<string> VariablesSetHere
    {
        get { lock (Gate) return EnvironmentSet.Select(p => p[..p.IndexOf('=')]).ToArray(); }
    }

    /// <summary>The profile asked for (option, environment, or auto); null before <see cref="Apply"/>.</summary>
    public static CpuKernelProfile? Requested => _requested;

    /// <summary>Whether libtorch now runs without any oneDNN convolution (the <see cref="CpuKernelProfile.Im2col"/> switches).</summary>
    public static bool Im2colKernelsActive => LibTorchSwitches.TryGet(out var s) && !s.MkldnnEnabled && !s.FlashAttentionEnabled;

    /// <summary>
    /// Whether convolutions that take a gradient pad their output channels to a multiple of 8 (the safe set, with oneDNN
    /// on): see <c>Models.Blocks.SafeConv</c>.
    /// </summary>
    internal static bool PadConvolutionChannels { get; set; }

    /// <summary>Parses <c>auto</c>, <c>default</c>, <c>safe</c> or <c>im2col</c>; anything else is an <see cref="ArgumentException"/> naming <paramref name="what"/>.</summary>
    public static CpuKernelProfile Parse(string value, string what = "--cpu-kernels") => value.Trim().ToLowerInvariant() switch
    {
        "auto" => CpuKernelProfile.Auto,
        "default" => CpuKernelProfile.Default,
        "safe" => CpuKernelProfile.Safe,
        "im2col" => CpuKernelProfile.Im2col,
        _ => throw new ArgumentException($"{what}: '{value}' is not a CPU kernel profile (expected auto, default, safe or im2col)"),
    };

    /// <summary>
    /// Applies <paramref name="profile"/> (null: <see cref="EnvironmentVariable"/>, else auto). Call before the first
    /// tensor is made: the safe set's instruction-set limits only take effect then (variables the user set are kept).
    /// Later calls only flip libtorch's switches. Returns the profile in force.
    /// </summary>
    public static CpuKernelProfile Apply(CpuKernelProfile? profile = null)
    {
        lock (Gate)
        {
            var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
            var requested = profile ?? (string.IsNullOrWhiteSpace(env) ? CpuKernelProfile.Auto : Parse(env, EnvironmentVariable));
            bool safe = requested is CpuKernelProfile.Safe or CpuKernelProfile.Im2col || (requested == CpuKernelProfile.Auto && CpuFeatures.Current.IsZen5OrLater);
            if (_requested is null && safe)
            {
                foreach (var pair in SafeEnvironment)
                {
                    var (name, value) = (pair[..pair.IndexOf('=')], pair[(pair.IndexOf('=') + 1)..]);
                    if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name))) continue;
                    SetProcessEnvironment(name, value);
                    EnvironmentSet.Add(pair);
                }
            }
            _requested = requested;
            if (requested == CpuKernelProfile.Im2col) UseIm2colKernels();
            else if (safe) UseSafeKernels();
            else if (requested == CpuKernelProfile.Default && LibTorchSwitches.TryGet(out _))
            {
                LibTorchSwitches.Set(mkldnn: true, flashAttention: true, nnpack: true);
                PadConvolutionChannels = false;
            }
            return requested;
        }
    }

    /// <summary>
    /// Switches libtorch to the safe set now: oneDNN convolutions (at AVX2 where <see cref="Apply"/> set it before
    /// libtorch started), padded to 8 output channels where they take a gradient, the flash attention kernel, NNPACK off.
    /// </summary>
    public static void UseSafeKernels()
    {
        RequireSwitches();
        LibTorchSwitches.Set(mkldnn: true, flashAttention: true, nnpack: false);
        PadConvolutionChannels = true;
    }

    /// <summary>
    /// Switches libtorch to convolutions by im2col + BLAS now (no oneDNN), attention by the math path. NNPACK goes off
    /// too: where oneDNN is off a convolution asks for it, and on CPUs it does not support (Zen 5) every ask logs
    /// "Could not initialize NNPACK! Reason: Unsupported hardware." The gradient check's fallback.
    /// </summary>
    public static void UseIm2colKernels()
    {
        RequireSwitches();
        LibTorchSwitches.Set(mkldnn: false, flashAttention: false, nnpack: false);
        PadConvolutionChannels = false;
    }

    private static void RequireSwitches()
    {
        if (!LibTorchSwitches.TryGet(out _))
        {
            throw new InvalidOperationException("libtorch's global context could not be found in this process (libtorch_cpu.so not mapped)");
        }
    }

    /// <summary>What is in force, for logs and <c>ddpo doctor</c>: the switches and the environment that chose kernels.</summary>
    public static string Describe()
    {
        var parts = new List<string>();
        if (LibTorchSwitches.TryGet(out var s))
        {
            parts.Add(!s.MkldnnEnabled ? "im2col + BLAS convolutions (oneDNN off)"
                : PadConvolutionChannels ? "oneDNN convolutions (output channels padded to 8 where they take a gradient)" : "oneDNN convolutions");
            parts.Add(s.FlashAttentionEnabled ? "flash attention" : "math attention");
            if (s.NnpackEnabled is false) parts.Add("NNPACK off");
        }
        foreach (var name in new[] { "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS" })
        {
            var value = Environment.GetEnvironmentVariable(name);
            if (!string.IsNullOrEmpty(value)) parts.Add($"{name}={value}{(EnvironmentSet.Any(e => e.StartsWith(name + "=", StringComparison.Ordinal)) ? " (set by ddpo)" : "")}");
        }
        return string.Join(", ", parts);
    }

    // oneDNN and ATen read these with getenv(); .NET's Environment does not change the C environment on Linux.
    private static void SetProcessEnvironment(string name, string value)
    {
        Environment.SetEnvironmentVariable(name, value);
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) _ = setenv(name, value, 1);
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);
}

/// <summary>
/// libtorch's global switches that TorchSharp does not expose (<c>torch.backends.mkldnn.enabled</c>,
/// <c>torch.backends.cuda.enable_flash_sdp</c>, which also governs the CPU's flash kernel): <c>at::Context</c>'s
/// members, called through their exported symbols (Itanium C++ ABI: the context pointer is the first argument).
/// </summary>
internal static unsafe class LibTorchSwitches
{
    private static bool _resolved;
    private static nint _context;
    private static delegate* unmanaged<nint, byte> _getMkldnn;
    private static delegate* unmanaged<nint, byte, void> _setMkldnn;
    private static delegate* unmanaged<nint, byte> _getFlash;
    private static delegate* unmanaged<nint, byte, void> _setFlash;
    private static delegate* unmanaged<nint, byte> _getNnpack;
    private static delegate* unmanaged<nint, byte, void> _setNnpack;

    /// <summary>The switches' values (NNPACK's null where this libtorch has no such switch).</summary>
    public readonly record struct State(bool MkldnnEnabled, bool FlashAttentionEnabled, bool? NnpackEnabled);

    /// <summary>Reads the switches; false where libtorch's symbols are not found.</summary>
    public static bool TryGet(out State state)
    {
        state = default;
        if (!Resolve()) return false;
        state = new State(_getMkldnn(_context) != 0, _getFlash(_context) != 0, _getNnpack is null ? null : _getNnpack(_context) != 0);
        return true;
    }

    /// <summary>Sets the switches (NNPACK's where this libtorch has it).</summary>
    public static void Set(bool mkldnn, bool flashAttention, bool nnpack)
    {
        if (!Resolve()) throw new InvalidOperationException("libtorch's global context could not be found");
        _setMkldnn(_context, mkldnn ? (byte)1 : (byte)0);
        _setFlash(_context, flashAttention ? (byte)1 : (byte)0);
        if (_setNnpack is not null) _setNnpack(_context, nnpack ? (byte)1 : (byte)0);
    }

    private static bool Resolve()
    {
        if (_resolved) return _context != 0;
        // Any call into TorchSharp loads libtorch; the symbols are then looked up in the mapped libtorch_cpu.so.
        _ = TorchSharp.torch.get_num_threads();
        _resolved = true;
        var path = TorchRuntime.LoadedLibTorch();
        if (path is null || !NativeLibrary.TryLoad(path, out var lib)) return false;
        if (!NativeLibrary.TryGetExport(lib, "_ZN2at13globalContextEv", out var global)
            || !NativeLibrary.TryGetExport(lib, "_ZNK2at7Context17userEnabledMkldnnEv", out var getMkldnn)
            || !NativeLibrary.TryGetExport(lib, "_ZN2at7Context20setUserEnabledMkldnnEb", out var setMkldnn)
            || !NativeLibrary.TryGetExport(lib, "_ZNK2at7Context19userEnabledFlashSDPEv", out var getFlash)
            || !NativeLibrary.TryGetExport(lib, "_ZN2at7Context14setSDPUseFlashEb", out var setFlash))
        {
            return false;
        }
        _getMkldnn = (delegate* unmanaged<nint, byte>)getMkldnn;
        _setMkldnn = (delegate* unmanaged<nint, byte, void>)setMkldnn;
        _getFlash = (delegate* unmanaged<nint, byte>)getFlash;
        _setFlash = (delegate* unmanaged<nint, byte, void>)setFlash;
        if (NativeLibrary.TryGetExport(lib, "_ZNK2at7Context17userEnabledNNPACKEv", out var getNnpack)
            && NativeLibrary.TryGetExport(lib, "_ZN2at7Context20setUserEnabledNNPACKEb", out var setNnpack))
        {
            _getNnpack = (delegate* unmanaged<nint, byte>)getNnpack;
            _setNnpack = (delegate* unmanaged<nint, byte, void>)setNnpack;
        }
        _context = ((delegate* unmanaged<nint>)global)();
        return _context != 0;
    }
}
