using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Blocks;

/// <summary>Device/dtype checks (TorchSharp's <see cref="Device"/> has no value equality).</summary>
internal static class Placement
{
    /// <summary>True when <paramref name="t"/> lives on <paramref name="device"/> (an index of -1 matches any index).</summary>
    public static bool IsOn(Tensor t, Device device) =>
        t.device_type == device.type && (device.index < 0 || t.device_index == device.index);

    /// <summary>Converts <paramref name="t"/> to <paramref name="dtype"/> on <paramref name="device"/> only when needed.</summary>
    public static Tensor To(Tensor t, ScalarType dtype, Device device) =>
        t.dtype == dtype && IsOn(t, device) ? t : t.to(dtype, device);
}
