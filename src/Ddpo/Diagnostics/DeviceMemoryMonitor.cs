using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>
/// Peak memory while a piece of work runs, by polling every few milliseconds: on CUDA the device memory in use
/// (NVML: libtorch's caching allocator and the CUDA context included, as nvidia-smi shows it), on the CPU the
/// process's resident memory. TorchSharp 0.107 exposes no allocator statistics (max_memory_allocated), so this is
/// the one measure both our process and PyTorch's can report alike.
/// </summary>
internal sealed class DeviceMemoryMonitor : IDisposable
{
    private readonly Func<long?> _read;
    private readonly Thread _thread;
    private volatile bool _stop;
    private long _peak;

    /// <summary>What is measured: "device memory in use (NVML)" or "process resident memory".</summary>
    public string What { get; }

    /// <summary>Starts polling for <paramref name="device"/>.</summary>
    public DeviceMemoryMonitor(Device device)
    {
        var nvml = device.type == DeviceType.CUDA ? Nvml.TryGet() : null;
        int index = Math.Max(0, (int)device.index);
        if (nvml is not null)
        {
            _read = () => nvml.UsedBytes(index);
            What = "device memory in use (NVML)";
        }
        else
        {
            _read = ResidentBytes;
            What = device.type == DeviceType.CUDA ? "process resident memory (NVML unavailable)" : "process resident memory";
        }
        _peak = _read() ?? 0;
        _thread = new Thread(Poll) { IsBackground = true, Name = "ddpo-memory-monitor" };
        _thread.Start();
    }

    private void Poll()
    {
        while (!_stop)
        {
            if (_read() is { } v && v > Interlocked.Read(ref _peak)) Interlocked.Exchange(ref _peak, v);
            Thread.Sleep(5);
        }
    }

    /// <summary>The highest value seen so far, in GiB.</summary>
    public double PeakGiB => Interlocked.Read(ref _peak) / (double)(1L << 30);

    private static long? ResidentBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
                }
            }
        }
        catch (IOException) { }
        return Environment.WorkingSet;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}
