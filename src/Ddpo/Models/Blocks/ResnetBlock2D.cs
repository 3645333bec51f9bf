using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Blocks;

/// <summary>
/// diffusers <c>ResnetBlock2D</c> (pre-norm, "default" time-embedding mode, SiLU):
/// <c>(shortcut(x) + conv2(drop(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb))))))) / scale</c>.
/// </summary>
internal sealed class ResnetBlock2D : nn.Module
{
    [ComponentName(Name = "norm1")] private readonly GroupNorm _norm1;
    [ComponentName(Name = "conv1")] private readonly Conv2d _conv1;
    [ComponentName(Name = "time_emb_proj")] private readonly Linear? _timeEmbProj;
    [ComponentName(Name = "norm2")] private readonly GroupNorm _norm2;
    [ComponentName(Name = "conv2")] private readonly Conv2d _conv2;
    [ComponentName(Name = "conv_shortcut")] private readonly Conv2d? _convShortcut;
    private readonly double _outputScale;
    private readonly double _dropout;

    /// <summary>Creates the block; <paramref name="tembChannels"/> null means no time embedding (VAE).</summary>
    public ResnetBlock2D(int inChannels, int outChannels, int? tembChannels, int groups, double eps,
        double outputScale, double dropout, ModuleOptions o) : base(nameof(ResnetBlock2D))
    {
        _norm1 = o.GroupNorm(groups, inChannels, eps);
        _conv1 = o.Conv(inChannels, outChannels, 3, padding: 1);
        _timeEmbProj = tembChannels is int t ? o.Linear(t, outChannels) : null;
        _norm2 = o.GroupNorm(groups, outChannels, eps);
        _conv2 = o.Conv(outChannels, outChannels, 3, padding: 1);
        _convShortcut = inChannels != outChannels ? o.Conv(inChannels, outChannels, 1) : null;
        _outputScale = outputScale;
        _dropout = dropout;
        RegisterComponents();
    }

    /// <summary>Applies the block; <paramref name="temb"/> is the [B, T] time embedding (before SiLU) or null.</summary>
    public Tensor Forward(Tensor x, Tensor? temb)
    {
        var h = SafeConv.Call(_conv1, F.silu(_norm1.call(x)));
        if (_timeEmbProj is not null && temb is not null)
        {
            var t = _timeEmbProj.call(F.silu(temb));
            h = h + t.unsqueeze(-1).unsqueeze(-1);
        }
        h = F.silu(_norm2.call(h));
        if (_dropout > 0 && training) h = F.dropout(h, _dropout, true);
        h = SafeConv.Call(_conv2, h);
        var shortcut = _convShortcut is null ? x : SafeConv.Call(_convShortcut, x);
        var output = shortcut + h;
        return _outputScale == 1.0 ? output : output / _outputScale;
    }
}
