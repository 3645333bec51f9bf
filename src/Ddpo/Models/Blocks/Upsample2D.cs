using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Blocks;

/// <summary>diffusers <c>Upsample2D</c>: nearest-neighbour x2 (or to a given size), then a 3x3 convolution.</summary>
internal sealed class Upsample2D : nn.Module
{
    [ComponentName(Name = "conv")] private readonly Conv2d _conv;

    /// <summary>Creates the layer.</summary>
    public Upsample2D(int channels, int outChannels, ModuleOptions o) : base(nameof(Upsample2D))
    {
        _conv = o.Conv(channels, outChannels, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>Doubles the spatial size, or resizes to <paramref name="outputSize"/> (H, W) when given.</summary>
    public Tensor Forward(Tensor x, long[]? outputSize = null)
    {
        var up = outputSize is null
            ? F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)
            : F.interpolate(x, size: outputSize, mode: InterpolationMode.Nearest);
        return SafeConv.Call(_conv, up);
    }
}
