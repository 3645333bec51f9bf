using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Unet;

/// <summary>diffusers <c>UpBlock2D</c> / <c>CrossAttnUpBlock2D</c>: each ResNet takes the hidden state concatenated with a skip.</summary>
internal sealed class UpBlock : UNetUpBlock
{
    [ComponentName(Name = "resnets")] private readonly ModuleList<ResnetBlock2D> _resnets;
    [ComponentName(Name = "attentions")] private readonly ModuleList<Transformer2DModel>? _attentions;
    [ComponentName(Name = "upsamplers")] private readonly ModuleList<Upsample2D>? _upsamplers;

    /// <summary>Creates up block <paramref name="index"/> (0 = deepest) of the UNet described by <paramref name="c"/>.</summary>
    public UpBlock(UNet2DConditionConfig c, int index, ModuleOptions o) : base(c.UpBlockTypes[index])
    {
        int n = c.BlockOutChannels.Length;
        int rev(int i) => n - 1 - i;
        int outChannels = c.BlockOutChannels[rev(index)];
        int prevOutput = c.BlockOutChannels[rev(Math.Max(index - 1, 0))];
        int inChannels = c.BlockOutChannels[rev(Math.Min(index + 1, n - 1))];
        int layers = c.LayersPerBlock[rev(index)] + 1;
        bool crossAttn = c.UpBlockTypes[index] == "CrossAttnUpBlock2D";
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers)
            .Select(i =>
            {
                int skip = i == layers - 1 ? inChannels : outChannels;
                int resIn = i == 0 ? prevOutput : outChannels;
                return new ResnetBlock2D(resIn + skip, outChannels, c.TimeEmbedDim, c.NormNumGroups, c.NormEps,
                    c.ResnetOutScaleFactor, c.Dropout, o);
            })
            .ToArray());
        if (crossAttn)
        {
            int heads = c.HeadsPerBlock[rev(index)];
            _attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, layers)
                .Select(_ => new Transformer2DModel(heads, outChannels / heads, outChannels, c.TransformerLayersPerBlock[rev(index)],
                    c.CrossAttentionDim[rev(index)], c.NormNumGroups, c.UseLinearProjection, c.UpcastAttention, c.Dropout, o))
                .ToArray());
        }
        if (index < n - 1)
        {
            _upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, outChannels, o));
        }
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override int ResnetCount => _resnets.Count;

    /// <inheritdoc/>
    public override bool HasUpsampler => _upsamplers is not null;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor hidden, List<Tensor> skips, Tensor temb, Tensor context, long[]? upsampleSize)
    {
        for (int i = 0; i < _resnets.Count; i++)
        {
            hidden = cat([hidden, Pop(skips)], 1);
            hidden = _resnets[i].Forward(hidden, temb);
            if (_attentions is not null) hidden = _attentions[i].Forward(hidden, context);
        }
        if (_upsamplers is not null) hidden = _upsamplers[0].Forward(hidden, upsampleSize);
        return hidden;
    }
}
