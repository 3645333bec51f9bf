using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Blocks;

/// <summary>
/// diffusers <c>UNetMidBlock2D</c> as used by the VAE (no time embedding): ResNet, then optional single-head
/// spatial self-attention (group_norm, residual) and ResNet.
/// </summary>
internal sealed class MidBlock2D : nn.Module
{
    [ComponentName(Name = "attentions")] private readonly ModuleList<Attention> _attentions;
    [ComponentName(Name = "resnets")] private readonly ModuleList<ResnetBlock2D> _resnets;

    /// <summary>Creates the block for <paramref name="channels"/> channels.</summary>
    public MidBlock2D(int channels, int groups, double eps, bool addAttention, ModuleOptions o) : base("UNetMidBlock2D")
    {
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, 2)
            .Select(_ => new ResnetBlock2D(channels, channels, null, groups, eps, 1.0, 0.0, o))
            .ToArray());
        _attentions = addAttention
            ? new ModuleList<Attention>(new Attention(channels, null, 1, channels, bias: true, upcast: false, o,
                normGroups: groups, eps: eps, residual: true))
            : new ModuleList<Attention>();
        RegisterComponents();
    }

    /// <summary>Applies the block.</summary>
    public Tensor Forward(Tensor hidden)
    {
        hidden = _resnets[0].Forward(hidden, null);
        if (_attentions.Count > 0) hidden = _attentions[0].Forward(hidden);
        return _resnets[1].Forward(hidden, null);
    }
}
