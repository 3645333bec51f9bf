using System.Runtime.InteropServices;
using System.Text;

namespace Ddpo.Diagnostics;

/// <summary>
/// The NVIDIA driver's management library (<c>libnvidia-ml.so.1</c>, present wherever the driver is), read through
/// function pointers so that its absence (a CPU machine) is a null, not a crash: GPU name, driver and CUDA driver
/// versions, and device memory in use (what the memory monitor polls: it counts every allocator, libtorch's cache
/// included, the same way for our process and PyTorch's).
/// </summary>
internal sealed unsafe class Nvml
{
    private readonly delegate* unmanaged<uint, IntPtr*, int> _handleByIndex;
    private readonly delegate* unmanaged<IntPtr, ulong*, int> _memoryInfo;
    private readonly delegate* unmanaged<IntPtr, byte*, uint, int> _name;
    private readonly delegate* unmanaged<byte*, uint, int> _driverVersion;
    private readonly delegate* unmanaged<int*, int> _cudaDriverVersion;

    private Nvml(IntPtr lib)
    {
        _handleByIndex = (delegate* unmanaged<uint, IntPtr*, int>)NativeLibrary.GetExport(lib, "nvmlDeviceGetHandleByIndex_v2");
        _memoryInfo = (delegate* unmanaged<IntPtr, ulong*, int>)NativeLibrary.GetExport(lib, "nvmlDeviceGetMemoryInfo");
        _name = (delegate* unmanaged<IntPtr, byte*, uint, int>)NativeLibrary.GetExport(lib, "nvmlDeviceGetName");
        _driverVersion = (delegate* unmanaged<byte*, uint, int>)NativeLibrary.GetExport(lib, "nvmlSystemGetDriverVersion");
        _cudaDriverVersion = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(lib, "nvmlSystemGetCudaDriverVersion");
    }

    private static readonly Lazy<Nvml?> Instance = new(Open);

    /// <summary>The initialised library, or null where there is no NVIDIA driver.</summary>
    public static Nvml? TryGet() => Instance.Value;

    private static Nvml? Open()
    {
        if (!NativeLibrary.TryLoad("libnvidia-ml.so.1", out var lib)) return null;
        try
        {
            var init = (delegate* unmanaged<int>)NativeLibrary.GetExport(lib, "nvmlInit_v2");
            return init() == 0 ? new Nvml(lib) : null;
        }
        catch (EntryPointNotFoundException)
        {
            return null;
        }
    }

    private IntPtr Device(int index)
    {
        IntPtr handle;
        return _handleByIndex((uint)index, &handle) == 0 ? handle : IntPtr.Zero;
    }

    /// <summary>Bytes of device memory in use on GPU <paramref name="index"/> (all processes), or null.</summary>
    public long? UsedBytes(int index = 0)
    {
        var device = Device(index);
        if (device == IntPtr.Zero) return null;
        ulong* info = stackalloc ulong[3]; // total, free, used
        return _memoryInfo(device, info) == 0 ? (long)info[2] : null;
    }

    /// <summary>Total bytes of device memory of GPU <paramref name="index"/>, or null.</summary>
    public long? TotalBytes(int index = 0)
    {
        var device = Device(index);
        if (device == IntPtr.Zero) return null;
        ulong* info = stackalloc ulong[3];
        return _memoryInfo(device, info) == 0 ? (long)info[0] : null;
    }

    /// <summary>The GPU's name, or null.</summary>
    public string? Name(int index = 0)
    {
        var device = Device(index);
        if (device == IntPtr.Zero) return null;
        byte* buffer = stackalloc byte[256];
        return _name(device, buffer, 256) == 0 ? Text(buffer) : null;
    }

    /// <summary>The driver version, or null.</summary>
    public string? DriverVersion()
    {
        byte* buffer = stackalloc byte[96];
        return _driverVersion(buffer, 96) == 0 ? Text(buffer) : null;
    }

    /// <summary>The highest CUDA version the driver supports (e.g. "12.8"), or null.</summary>
    public string? CudaDriverVersion()
    {
        int v;
        return _cudaDriverVersion(&v) == 0 ? $"{v / 1000}.{v % 1000 / 10}" : null;
    }

    private static string Text(byte* buffer) => Encoding.UTF8.GetString(buffer, new ReadOnlySpan<byte>(buffer, 256).IndexOf((byte)0) is var n and >= 0 ? n : 0);
}
