using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Blocks;

/// <summary>
/// diffusers <c>Transformer2DModel</c> for continuous input: GroupNorm (eps 1e-6), <c>proj_in</c>
/// (1x1 conv, or Linear on [B, HW, C] tokens with <c>use_linear_projection</c>), transformer blocks,
/// <c>proj_out</c>, plus the input as residual.
/// </summary>
internal sealed class Transformer2DModel : nn.Module
{
    [ComponentName(Name = "norm")] private readonly GroupNorm _norm;
    [ComponentName(Name = "proj_in")] private readonly nn.Module<Tensor, Tensor> _projIn;
    [ComponentName(Name = "transformer_blocks")] private readonly ModuleList<BasicTransformerBlock> _blocks;
    [ComponentName(Name = "proj_out")] private readonly nn.Module<Tensor, Tensor> _projOut;
    private readonly bool _linear;

    /// <summary>Creates the model with <paramref name="heads"/> x <paramref name="headDim"/> inner width.</summary>
    public Transformer2DModel(int heads, int headDim, int inChannels, int numLayers, int crossAttentionDim,
        int groups, bool useLinearProjection, bool upcast, double dropout, ModuleOptions o)
        : base(nameof(Transformer2DModel))
    {
        int inner = heads * headDim;
        _linear = useLinearProjection;
        _norm = o.GroupNorm(groups, inChannels, 1e-6);
        _projIn = useLinearProjection ? o.Linear(inChannels, inner) : o.Conv(inChannels, inner, 1);
        _blocks = new ModuleList<BasicTransformerBlock>(Enumerable.Range(0, numLayers)
            .Select(_ => new BasicTransformerBlock(inner, heads, headDim, crossAttentionDim, upcast, dropout, o))
            .ToArray());
        _projOut = useLinearProjection ? o.Linear(inner, inChannels) : o.Conv(inner, inChannels, 1);
        RegisterComponents();
    }

    /// <summary>Applies the model to [B, C, H, W] features with text context [B, S, D].</summary>
    public Tensor Forward(Tensor x, Tensor context)
    {
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        var hidden = _norm.call(x);
        long inner;
        if (_linear)
        {
            inner = hidden.shape[1];
            hidden = _projIn.call(hidden.permute(0, 2, 3, 1).reshape(b, h * w, inner));
            inner = hidden.shape[2];
        }
        else
        {
            hidden = SafeConv.Call(_projIn, hidden);
            inner = hidden.shape[1];
            hidden = hidden.permute(0, 2, 3, 1).reshape(b, h * w, inner);
        }
        foreach (var block in _blocks)
        {
            hidden = block.Forward(hidden, context);
        }
        if (_linear)
        {
            hidden = _projOut.call(hidden);
            hidden = hidden.reshape(b, h, w, hidden.shape[2]).permute(0, 3, 1, 2).contiguous();
        }
        else
        {
            hidden = hidden.reshape(b, h, w, inner).permute(0, 3, 1, 2).contiguous();
            hidden = SafeConv.Call(_projOut, hidden);
        }
        return hidden + x;
    }
}
