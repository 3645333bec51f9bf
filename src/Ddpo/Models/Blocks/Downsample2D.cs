using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Blocks;

/// <summary>diffusers <c>Downsample2D</c> with a strided 3x3 convolution; padding 0 pads right/bottom by one first.</summary>
internal sealed class Downsample2D : nn.Module
{
    [ComponentName(Name = "conv")] private readonly Conv2d _conv;
    private readonly int _padding;

    /// <summary>Creates the layer.</summary>
    public Downsample2D(int channels, int outChannels, int padding, ModuleOptions o) : base(nameof(Downsample2D))
    {
        _conv = o.Conv(channels, outChannels, 3, stride: 2, padding: padding);
        _padding = padding;
        RegisterComponents();
    }

    /// <summary>Halves the spatial size.</summary>
    public Tensor Forward(Tensor x)
    {
        if (_padding == 0) x = F.pad(x, [0, 1, 0, 1], PaddingModes.Constant, 0);
        return SafeConv.Call(_conv, x);
    }
}
