using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Unet;

/// <summary>diffusers <c>DownBlock2D</c> / <c>CrossAttnDownBlock2D</c> (the latter with a transformer after each ResNet).</summary>
internal sealed class DownBlock : UNetDownBlock
{
    [ComponentName(Name = "resnets")] private readonly ModuleList<ResnetBlock2D> _resnets;
    [ComponentName(Name = "attentions")] private readonly ModuleList<Transformer2DModel>? _attentions;
    [ComponentName(Name = "downsamplers")] private readonly ModuleList<Downsample2D>? _downsamplers;

    /// <summary>Creates down block <paramref name="index"/> of the UNet described by <paramref name="c"/>.</summary>
    public DownBlock(UNet2DConditionConfig c, int index, int inChannels, ModuleOptions o)
        : base(c.DownBlockTypes[index])
    {
        int outChannels = c.BlockOutChannels[index];
        int layers = c.LayersPerBlock[index];
        bool crossAttn = c.DownBlockTypes[index] == "CrossAttnDownBlock2D";
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, c.TimeEmbedDim,
                c.NormNumGroups, c.NormEps, c.ResnetOutScaleFactor, c.Dropout, o))
            .ToArray());
        if (crossAttn)
        {
            int heads = c.HeadsPerBlock[index];
            _attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, layers)
                .Select(_ => new Transformer2DModel(heads, outChannels / heads, outChannels, c.TransformerLayersPerBlock[index],
                    c.CrossAttentionDim[index], c.NormNumGroups, c.UseLinearProjection, c.UpcastAttention, c.Dropout, o))
                .ToArray());
        }
        if (index < c.BlockOutChannels.Length - 1)
        {
            _downsamplers = new ModuleList<Downsample2D>(new Downsample2D(outChannels, outChannels, c.DownsamplePadding, o));
        }
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor hidden, Tensor temb, Tensor context, List<Tensor> skips)
    {
        for (int i = 0; i < _resnets.Count; i++)
        {
            hidden = _resnets[i].Forward(hidden, temb);
            if (_attentions is not null) hidden = _attentions[i].Forward(hidden, context);
            skips.Add(hidden);
        }
        if (_downsamplers is not null)
        {
            hidden = _downsamplers[0].Forward(hidden);
            skips.Add(hidden);
        }
        return hidden;
    }
}
