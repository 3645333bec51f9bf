using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>FluxTransformerBlock</c> (double stream): adaLN-Zero modulated joint attention with RoPE, and tanh-GELU
/// feed-forwards for the image (<c>ff</c>) and text (<c>ff_context</c>) streams, both with LoRA-capable linears.
/// <c>norm2</c> / <c>norm2_context</c> have no parameters. Half-precision text is clipped to the float16 range, as diffusers.
/// </summary>
internal sealed class FluxTransformerBlock : nn.Module
{
    [ComponentName(Name = "norm1")] private readonly AdaLayerNormZero _norm1;
    [ComponentName(Name = "norm1_context")] private readonly AdaLayerNormZero _norm1Context;
    [ComponentName(Name = "attn")] private readonly FluxAttention _attn;
    [ComponentName(Name = "ff")] private readonly GeluFeedForward _ff;
    [ComponentName(Name = "ff_context")] private readonly GeluFeedForward _ffContext;
    private readonly long _dim;

    /// <summary>Creates the block.</summary>
    public FluxTransformerBlock(int dim, int heads, int headDim, ModuleOptions o) : base(nameof(FluxTransformerBlock))
    {
        _dim = dim;
        _norm1 = new AdaLayerNormZero(dim, 6, o.Device, o.DType);
        _norm1Context = new AdaLayerNormZero(dim, 6, o.Device, o.DType);
        _attn = new FluxAttention(dim, heads, headDim, joint: true, o.Device, o.DType);
        _ff = new GeluFeedForward(dim, o, lora: true);
        _ffContext = new GeluFeedForward(dim, o, lora: true);
        RegisterComponents();
    }

    private Tensor Norm(Tensor x) => F.layer_norm(x, [_dim], null, null, 1e-6);

    /// <summary>
    /// One block on image tokens <paramref name="hidden"/> [B, N, dim], text tokens <paramref name="context"/> [B, S, dim],
    /// the conditioning <paramref name="temb"/> [B, dim] and the RoPE tables [S + N, head_dim]. Returns the new text and
    /// image tokens, in diffusers' order.
    /// </summary>
    public (Tensor Context, Tensor Hidden) Forward(Tensor hidden, Tensor context, Tensor temb, Tensor ropeCos, Tensor ropeSin)
    {
        using var scope = NewDisposeScope();
        // c / cc: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
        var (normHidden, _, c) = _norm1.Forward(hidden, temb);
        var (normContext, _, cc) = _norm1Context.Forward(context, temb);
        var (attnOut, contextAttnOut) = _attn.Forward(normHidden, normContext, ropeCos, ropeSin);

        hidden = hidden + c[2].unsqueeze(1) * attnOut;
        var ffIn = Norm(hidden) * (1 + c[4].unsqueeze(1)) + c[3].unsqueeze(1);
        hidden = hidden + c[5].unsqueeze(1) * _ff.call(ffIn);

        context = context + cc[2].unsqueeze(1) * contextAttnOut!;
        var ffContextIn = Norm(context) * (1 + cc[4].unsqueeze(1)) + cc[3].unsqueeze(1);
        context = context + cc[5].unsqueeze(1) * _ffContext.call(ffContextIn);
        if (context.dtype == ScalarType.Float16) context = context.clip(-65504, 65504);
        return (context.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }
}
