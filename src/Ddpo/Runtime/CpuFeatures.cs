namespace Ddpo.Runtime;

/// <summary>
/// What this machine's CPU is, from <c>/proc/cpuinfo</c> (first processor): vendor, family, model, name and flags.
/// Read without loading libtorch, so that kernels can be chosen before it initialises (see <see cref="CpuKernels"/>).
/// </summary>
internal sealed record CpuFeatures(string Vendor, int Family, int Model, string ModelName, IReadOnlySet<string> Flags)
{
    /// <summary>The flags that decide which kernels oneDNN and ATen run (shown by <c>ddpo doctor</c>).</summary>
    public static readonly string[] KernelFlags =
    [
        "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
        "avx_vnni", "avx512_vp2intersect", "amx_tile", "amx_bf16",
    ];

    /// <summary>This machine's CPU; an unknown one (no /proc/cpuinfo) has empty fields.</summary>
    public static CpuFeatures Current { get; } = Read("/proc/cpuinfo");

    /// <summary>
    /// AMD Zen 5 (family 0x1A): libtorch 2.10's oneDNN gave wrong float32 convolution gradients there (5 of 8 tries),
    /// and the whole UNet's gradient stayed wrong with AVX2 oneDNN kernels (docs/cpu-gradients.md).
    /// </summary>
    public bool IsZen5OrLater => Vendor == "AuthenticAMD" && Family >= 0x1A;

    /// <summary>The kernel-relevant flags this CPU has, in <see cref="KernelFlags"/> order.</summary>
    public IEnumerable<string> PresentKernelFlags => KernelFlags.Where(Flags.Contains);

    /// <summary>One line: name, vendor/family/model and the kernel flags.</summary>
    public override string ToString() =>
        $"{(ModelName.Length > 0 ? ModelName : "unknown CPU")} ({Vendor} family 0x{Family:x} model 0x{Model:x}; {string.Join(" ", PresentKernelFlags)})";

    /// <summary>Parses a cpuinfo file (its first processor block).</summary>
    public static CpuFeatures Read(string path)
    {
        string vendor = "", name = "";
        int family = 0, model = 0;
        var flags = new HashSet<string>(StringComparer.Ordinal);
        if (!File.Exists(path)) return new CpuFeatures(vendor, family, model, name, flags);
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0 && vendor.Length > 0) break;
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            var key = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "vendor_id": vendor = value; break;
                case "cpu family": int.TryParse(value, out family); break;
                case "model": int.TryParse(value, out model); break;
                case "model name": name = value; break;
                case "flags": flags.UnionWith(value.Split(' ', StringSplitOptions.RemoveEmptyEntries)); break;
            }
        }
        return new CpuFeatures(vendor, family, model, name, flags);
    }
}
