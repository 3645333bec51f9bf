using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Runtime;

/// <summary>
/// Copies between the device and the host through page-locked (pinned) host memory on CUDA: the DMA engine reads
/// and writes pinned pages directly (about twice the bandwidth of pageable memory), and a host-to-device copy from
/// pinned memory can be queued without waiting for the GPU (<c>non_blocking</c>). On the CPU both are plain copies.
/// </summary>
internal static class HostCopy
{
    /// <summary>
    /// <paramref name="source"/> on the host: on CUDA copied into a freshly pinned tensor and waited for (the caller
    /// reads it next, e.g. a reward); on the CPU <paramref name="source"/> itself (an alias the caller owns).
    /// </summary>
    public static Tensor ToHost(Tensor source)
    {
        if (source.device_type != DeviceType.CUDA) return source.alias();
        var pinned = empty(source.shape, dtype: source.dtype, device: CPU).pin_memory();
        pinned.copy_(source, true);
        cuda.synchronize(source.device);
        return pinned;
    }

    /// <summary>
    /// A host tensor on <paramref name="device"/> without waiting for the GPU: on CUDA it is pinned and copied with
    /// <c>non_blocking</c> (libtorch's pinned-memory cache keeps the pages until the copy is done, so the host tensor
    /// may be disposed at once); elsewhere an ordinary <c>to(device)</c>.
    /// </summary>
    public static Tensor ToDevice(Tensor host, Device device)
    {
        if (device.type != DeviceType.CUDA || host.device_type != DeviceType.CPU) return host.to(device);
        using var pinned = host.is_pinned() ? host.alias() : host.pin_memory();
        return pinned.to(device, non_blocking: true);
    }
}
