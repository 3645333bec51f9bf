using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Blocks;

/// <summary>
/// diffusers <c>BasicTransformerBlock</c> (layer_norm type): self-attention, cross-attention and a GEGLU
/// feed-forward, each pre-normalised (<c>norm1</c>, <c>norm2</c>, <c>norm3</c>) and residual.
/// </summary>
internal sealed class BasicTransformerBlock : nn.Module
{
    [ComponentName(Name = "norm1")] private readonly LayerNorm _norm1;
    [ComponentName(Name = "attn1")] private readonly Attention _attn1;
    [ComponentName(Name = "norm2")] private readonly LayerNorm _norm2;
    [ComponentName(Name = "attn2")] private readonly Attention _attn2;
    [ComponentName(Name = "norm3")] private readonly LayerNorm _norm3;
    [ComponentName(Name = "ff")] private readonly FeedForward _ff;

    /// <summary>Creates the block for width <paramref name="dim"/> = heads * headDim.</summary>
    public BasicTransformerBlock(int dim, int heads, int headDim, int crossAttentionDim, bool upcast, double dropout,
        ModuleOptions o) : base(nameof(BasicTransformerBlock))
    {
        _norm1 = o.LayerNorm(dim, 1e-5);
        _attn1 = new Attention(dim, null, heads, headDim, bias: false, upcast, o, dropout: dropout);
        _norm2 = o.LayerNorm(dim, 1e-5);
        _attn2 = new Attention(dim, crossAttentionDim, heads, headDim, bias: false, upcast, o, dropout: dropout);
        _norm3 = o.LayerNorm(dim, 1e-5);
        _ff = new FeedForward(dim, o, dropout: dropout);
        RegisterComponents();
    }

    /// <summary>Applies the block to tokens [B, L, dim] with text context [B, S, D].</summary>
    public Tensor Forward(Tensor x, Tensor context)
    {
        x = _attn1.Forward(_norm1.call(x)) + x;
        x = _attn2.Forward(_norm2.call(x), context) + x;
        return _ff.call(_norm3.call(x)) + x;
    }
}
