using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>JointTransformerBlock</c> (MMDiT): adaLN-Zero modulated joint attention and GELU feed-forwards for the
/// image and the text streams. SD3.5 dual-attention blocks add the image-only <c>attn2</c> (SD35AdaLayerNormZeroX);
/// the last block is context-pre-only (<c>norm1_context</c> is AdaLayerNormContinuous, no <c>ff_context</c>, and the
/// text stream is dropped). <c>norm2</c> / <c>norm2_context</c> have no parameters.
/// </summary>
internal sealed class JointTransformerBlock : nn.Module
{
    [ComponentName(Name = "norm1")] private readonly AdaLayerNormZero _norm1;
    [ComponentName(Name = "norm1_context")] private readonly nn.Module _norm1Context;
    [ComponentName(Name = "attn")] private readonly JointAttention _attn;
    [ComponentName(Name = "attn2")] private readonly JointAttention? _attn2;
    [ComponentName(Name = "ff")] private readonly GeluFeedForward _ff;
    [ComponentName(Name = "ff_context")] private readonly GeluFeedForward? _ffContext;
    private readonly long _dim;

    /// <summary>True for the last block, whose text output is discarded.</summary>
    public bool ContextPreOnly { get; }

    /// <summary>Creates the block.</summary>
    public JointTransformerBlock(int dim, int heads, int headDim, bool contextPreOnly, bool qkNorm, bool dualAttention, ModuleOptions o)
        : base(nameof(JointTransformerBlock))
    {
        _dim = dim;
        ContextPreOnly = contextPreOnly;
        _norm1 = new AdaLayerNormZero(dim, dualAttention ? 9 : 6, o.Device, o.DType);
        _norm1Context = contextPreOnly
            ? new AdaLayerNormContinuous(dim, dim, o.Device, o.DType)
            : new AdaLayerNormZero(dim, 6, o.Device, o.DType);
        _attn = new JointAttention(dim, heads, headDim, qkNorm, joint: true, contextPreOnly, o.Device, o.DType);
        if (dualAttention) _attn2 = new JointAttention(dim, heads, headDim, qkNorm, joint: false, false, o.Device, o.DType);
        _ff = new GeluFeedForward(dim, o);
        if (!contextPreOnly) _ffContext = new GeluFeedForward(dim, o);
        RegisterComponents();
    }

    private Tensor Norm(Tensor x) => F.layer_norm(x, [_dim], null, null, 1e-6);

    /// <summary>
    /// One block on image tokens <paramref name="hidden"/> [B, N, dim], text tokens <paramref name="context"/> [B, S, dim]
    /// and the conditioning <paramref name="temb"/> [B, dim]. Returns the new text tokens (null after the last block)
    /// and image tokens, in diffusers' order.
    /// </summary>
    public (Tensor? Context, Tensor Hidden) Forward(Tensor hidden, Tensor context, Tensor temb)
    {
        using var scope = NewDisposeScope();
        var (normHidden, normed, c) = _norm1.Forward(hidden, temb);
        // c: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp[, shift_msa2, scale_msa2, gate_msa2]
        Tensor normContext;
        Tensor[]? cc = null;
        if (ContextPreOnly)
        {
            normContext = ((AdaLayerNormContinuous)_norm1Context).Forward(context, temb);
        }
        else
        {
            (normContext, _, cc) = ((AdaLayerNormZero)_norm1Context).Forward(context, temb);
        }

        var (attnOut, contextAttnOut) = _attn.Forward(normHidden, normContext);
        hidden = hidden + c[2].unsqueeze(1) * attnOut;
        if (_attn2 is not null)
        {
            var normHidden2 = normed * (1 + c[7].unsqueeze(1)) + c[6].unsqueeze(1);
            hidden = hidden + c[8].unsqueeze(1) * _attn2.Forward(normHidden2, null).Hidden;
        }
        var ffIn = Norm(hidden) * (1 + c[4].unsqueeze(1)) + c[3].unsqueeze(1);
        hidden = hidden + c[5].unsqueeze(1) * _ff.call(ffIn);

        if (ContextPreOnly) return (null, hidden.MoveToOuterDisposeScope());
        // cc: c_shift_msa, c_scale_msa, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp
        context = context + cc![2].unsqueeze(1) * contextAttnOut!;
        var ffContextIn = Norm(context) * (1 + cc[4].unsqueeze(1)) + cc[3].unsqueeze(1);
        context = context + cc[5].unsqueeze(1) * _ffContext!.call(ffContextIn);
        return (context.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }
}
