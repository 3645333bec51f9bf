using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Blocks;

/// <summary>Where and in which dtype a model's layers are created (null: CPU / default dtype).</summary>
internal readonly record struct ModuleOptions(Device? Device, ScalarType? DType)
{
    /// <summary>A Conv2d with PyTorch's default initialisation.</summary>
    public Conv2d Conv(long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0) =>
        nn.Conv2d(inChannels, outChannels, kernel, stride: stride, padding: padding, device: Device, dtype: DType);

    /// <summary>A Linear with PyTorch's default initialisation.</summary>
    public Linear Linear(long inFeatures, long outFeatures, bool bias = true) =>
        nn.Linear(inFeatures, outFeatures, bias, Device, DType);

    /// <summary>An affine GroupNorm initialised to weight 1, bias 0 (TorchSharp leaves it uninitialised).</summary>
    public GroupNorm GroupNorm(long groups, long channels, double eps)
    {
        var norm = nn.GroupNorm(groups, channels, eps, true, Device, DType);
        using (no_grad())
        {
            norm.weight!.fill_(1.0);
            norm.bias!.zero_();
        }
        return norm;
    }

    /// <summary>An affine LayerNorm over the last dimension, initialised to weight 1, bias 0.</summary>
    public LayerNorm LayerNorm(long dim, double eps)
    {
        var norm = nn.LayerNorm(dim, eps, true, true, Device, DType);
        using (no_grad())
        {
            norm.weight!.fill_(1.0);
            norm.bias!.zero_();
        }
        return norm;
    }
}
