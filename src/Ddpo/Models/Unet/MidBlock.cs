using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Unet;

/// <summary>diffusers <c>UNetMidBlock2DCrossAttn</c>: ResNet, then (transformer, ResNet) pairs.</summary>
internal sealed class MidBlockCrossAttn : nn.Module
{
    [ComponentName(Name = "attentions")] private readonly ModuleList<Transformer2DModel> _attentions;
    [ComponentName(Name = "resnets")] private readonly ModuleList<ResnetBlock2D> _resnets;

    /// <summary>Creates the mid block of the UNet described by <paramref name="c"/>.</summary>
    public MidBlockCrossAttn(UNet2DConditionConfig c, ModuleOptions o) : base("UNetMidBlock2DCrossAttn")
    {
        int last = c.BlockOutChannels.Length - 1;
        int ch = c.BlockOutChannels[last];
        int heads = c.HeadsPerBlock[last];
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, 2)
            .Select(_ => new ResnetBlock2D(ch, ch, c.TimeEmbedDim, c.NormNumGroups, c.NormEps, c.MidBlockScaleFactor, c.Dropout, o))
            .ToArray());
        _attentions = new ModuleList<Transformer2DModel>(new Transformer2DModel(heads, ch / heads, ch,
            c.TransformerLayersPerBlock[last], c.CrossAttentionDim[last], c.NormNumGroups, c.UseLinearProjection,
            c.UpcastAttention, c.Dropout, o));
        RegisterComponents();
    }

    /// <summary>Applies the block.</summary>
    public Tensor Forward(Tensor hidden, Tensor temb, Tensor context)
    {
        hidden = _resnets[0].Forward(hidden, temb);
        for (int i = 0; i < _attentions.Count; i++)
        {
            hidden = _attentions[i].Forward(hidden, context);
            hidden = _resnets[i + 1].Forward(hidden, temb);
        }
        return hidden;
    }
}
