using Ddpo.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>Attention</c> with <c>JointAttnProcessor2_0</c> (SD3's MMDiT attention). With added projections
/// (<c>attn</c>): the image tokens (<c>to_q/k/v</c>) and the text tokens (<c>add_q/k/v_proj</c>) are concatenated, image
/// first, attended jointly, and split back (<c>to_out.0</c> for the image, <c>to_add_out</c> for the text unless the block
/// is context-pre-only). Without (<c>attn2</c>, SD3.5 dual attention): image self-attention. Every projection is a
/// <see cref="LoraLinear"/> so LoRA can attach; the optional RMS norms act per head on q and k.
/// </summary>
internal sealed class JointAttention : nn.Module
{
    [ComponentName(Name = "norm_q")] private readonly RmsNorm? _normQ;
    [ComponentName(Name = "norm_k")] private readonly RmsNorm? _normK;
    [ComponentName(Name = "to_q")] private readonly LoraLinear _toQ;
    [ComponentName(Name = "to_k")] private readonly LoraLinear _toK;
    [ComponentName(Name = "to_v")] private readonly LoraLinear _toV;
    [ComponentName(Name = "add_k_proj")] private readonly LoraLinear? _addK;
    [ComponentName(Name = "add_v_proj")] private readonly LoraLinear? _addV;
    [ComponentName(Name = "add_q_proj")] private readonly LoraLinear? _addQ;
    [ComponentName(Name = "to_out")] private readonly ModuleList<LoraLinear> _toOut;
    [ComponentName(Name = "to_add_out")] private readonly LoraLinear? _toAddOut;
    [ComponentName(Name = "norm_added_q")] private readonly RmsNorm? _normAddedQ;
    [ComponentName(Name = "norm_added_k")] private readonly RmsNorm? _normAddedK;
    private readonly int _heads;
    private readonly int _headDim;

    /// <summary>
    /// Creates the layer on width <paramref name="dim"/>. <paramref name="joint"/>: with the text projections;
    /// <paramref name="contextPreOnly"/>: the text output is not projected (the last block discards it).
    /// </summary>
    public JointAttention(int dim, int heads, int headDim, bool qkNorm, bool joint, bool contextPreOnly, Device? device, ScalarType? dtype)
        : base(nameof(JointAttention))
    {
        const double eps = 1e-6;
        int inner = heads * headDim;
        _heads = heads;
        _headDim = headDim;
        if (qkNorm)
        {
            _normQ = new RmsNorm(headDim, eps, device, dtype);
            _normK = new RmsNorm(headDim, eps, device, dtype);
        }
        _toQ = new LoraLinear(dim, inner, true, device, dtype);
        _toK = new LoraLinear(dim, inner, true, device, dtype);
        _toV = new LoraLinear(dim, inner, true, device, dtype);
        if (joint)
        {
            _addK = new LoraLinear(dim, inner, true, device, dtype);
            _addV = new LoraLinear(dim, inner, true, device, dtype);
            _addQ = new LoraLinear(dim, inner, true, device, dtype);
            if (!contextPreOnly) _toAddOut = new LoraLinear(inner, dim, true, device, dtype);
            if (qkNorm)
            {
                _normAddedQ = new RmsNorm(headDim, eps, device, dtype);
                _normAddedK = new RmsNorm(headDim, eps, device, dtype);
            }
        }
        _toOut = new ModuleList<LoraLinear>(new LoraLinear(inner, dim, true, device, dtype));
        RegisterComponents();
    }

    private Tensor Heads(LoraLinear proj, Tensor x, RmsNorm? norm)
    {
        var h = proj.call(x).view(x.shape[0], -1, _heads, _headDim).transpose(1, 2);
        return norm is null ? h : norm.call(h);
    }

    /// <summary>
    /// Attends over <paramref name="x"/> [B, N, dim] and, for the joint layer, <paramref name="context"/> [B, S, dim].
    /// Returns the image output and the text output (null for self-attention; unprojected when context-pre-only).
    /// </summary>
    public (Tensor Hidden, Tensor? Context) Forward(Tensor x, Tensor? context)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1];
        var q = Heads(_toQ, x, _normQ);
        var k = Heads(_toK, x, _normK);
        var v = Heads(_toV, x, null);
        bool joint = context is not null && _addQ is not null;
        if (context is not null && !joint) throw new InvalidOperationException("this attention layer has no text projections");
        if (joint)
        {
            // Image tokens first: the output is split at N below.
            q = cat([q, Heads(_addQ!, context!, _normAddedQ)], 2);
            k = cat([k, Heads(_addK!, context!, _normAddedK)], 2);
            v = cat([v, Heads(_addV!, context!, null)], 2);
        }
        var attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, (long)_heads * _headDim);
        Tensor? ctxOut = null;
        var hidden = attn;
        if (joint)
        {
            hidden = attn[.., ..(int)n];
            ctxOut = attn[.., (int)n..];
            if (_toAddOut is not null) ctxOut = _toAddOut.call(ctxOut);
        }
        hidden = _toOut[0].call(hidden);
        return (hidden.MoveToOuterDisposeScope(), ctxOut?.MoveToOuterDisposeScope());
    }
}
