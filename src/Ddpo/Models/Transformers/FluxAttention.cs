using Ddpo.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>Attention</c> with <c>FluxAttnProcessor2_0</c>: per-head RMS norms (eps 1e-6) on q and k, RoPE on
/// both. Joint (double blocks, <c>added_kv_proj_dim</c>): the text tokens (<c>add_q/k/v_proj</c>, <c>norm_added_q/k</c>)
/// come first, then the image tokens; the output is split back, the image part through <c>to_out.0</c>, the text part
/// through <c>to_add_out</c>. Single blocks (<c>pre_only</c>): self-attention over the concatenated sequence with no
/// output projection. Every projection is a <see cref="LoraLinear"/> so LoRA can attach.
/// </summary>
internal sealed class FluxAttention : nn.Module
{
    [ComponentName(Name = "norm_q")] private readonly RmsNorm _normQ;
    [ComponentName(Name = "norm_k")] private readonly RmsNorm _normK;
    [ComponentName(Name = "to_q")] private readonly LoraLinear _toQ;
    [ComponentName(Name = "to_k")] private readonly LoraLinear _toK;
    [ComponentName(Name = "to_v")] private readonly LoraLinear _toV;
    [ComponentName(Name = "add_k_proj")] private readonly LoraLinear? _addK;
    [ComponentName(Name = "add_v_proj")] private readonly LoraLinear? _addV;
    [ComponentName(Name = "add_q_proj")] private readonly LoraLinear? _addQ;
    [ComponentName(Name = "to_out")] private readonly ModuleList<LoraLinear>? _toOut;
    [ComponentName(Name = "to_add_out")] private readonly LoraLinear? _toAddOut;
    [ComponentName(Name = "norm_added_q")] private readonly RmsNorm? _normAddedQ;
    [ComponentName(Name = "norm_added_k")] private readonly RmsNorm? _normAddedK;
    private readonly int _heads;
    private readonly int _headDim;

    /// <summary>
    /// Creates the layer on width <paramref name="dim"/>: <paramref name="joint"/> for the double blocks (text
    /// projections and output projections), otherwise the single blocks' pre-only self-attention.
    /// </summary>
    public FluxAttention(int dim, int heads, int headDim, bool joint, Device? device, ScalarType? dtype) : base(nameof(FluxAttention))
    {
        const double eps = 1e-6;
        int inner = heads * headDim;
        _heads = heads;
        _headDim = headDim;
        _normQ = new RmsNorm(headDim, eps, device, dtype);
        _normK = new RmsNorm(headDim, eps, device, dtype);
        _toQ = new LoraLinear(dim, inner, true, device, dtype);
        _toK = new LoraLinear(dim, inner, true, device, dtype);
        _toV = new LoraLinear(dim, inner, true, device, dtype);
        if (joint)
        {
            _addK = new LoraLinear(dim, inner, true, device, dtype);
            _addV = new LoraLinear(dim, inner, true, device, dtype);
            _addQ = new LoraLinear(dim, inner, true, device, dtype);
            _toOut = new ModuleList<LoraLinear>(new LoraLinear(inner, dim, true, device, dtype));
            _toAddOut = new LoraLinear(inner, dim, true, device, dtype);
            _normAddedQ = new RmsNorm(headDim, eps, device, dtype);
            _normAddedK = new RmsNorm(headDim, eps, device, dtype);
        }
        RegisterComponents();
    }

    private Tensor Heads(LoraLinear proj, Tensor x, RmsNorm? norm)
    {
        var h = proj.call(x).view(x.shape[0], -1, _heads, _headDim).transpose(1, 2);
        return norm is null ? h : norm.call(h);
    }

    /// <summary>
    /// Attends over <paramref name="x"/> [B, N, dim] (with <paramref name="context"/> [B, S, dim] first for the joint
    /// layer) with the RoPE tables [S + N, head_dim] (or [N, head_dim] for the single blocks' whole sequence). Returns
    /// the image output and, for the joint layer, the text output.
    /// </summary>
    public (Tensor Hidden, Tensor? Context) Forward(Tensor x, Tensor? context, Tensor ropeCos, Tensor ropeSin)
    {
        using var scope = NewDisposeScope();
        bool joint = _addQ is not null;
        if (joint != context is not null)
        {
            throw new InvalidOperationException(joint ? "the joint attention needs the text tokens" : "this attention layer has no text projections");
        }
        long b = x.shape[0];
        var q = Heads(_toQ, x, _normQ);
        var k = Heads(_toK, x, _normK);
        var v = Heads(_toV, x, null);
        long s = 0;
        if (joint)
        {
            s = context!.shape[1];
            // Text tokens first, as the RoPE ids (txt_ids, img_ids) are ordered.
            q = cat([Heads(_addQ!, context, _normAddedQ), q], 2);
            k = cat([Heads(_addK!, context, _normAddedK), k], 2);
            v = cat([Heads(_addV!, context, null), v], 2);
        }
        q = FluxPosEmbed.Apply(q, ropeCos, ropeSin);
        k = FluxPosEmbed.Apply(k, ropeCos, ropeSin);
        var attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, (long)_heads * _headDim);
        if (!joint) return (attn.MoveToOuterDisposeScope(), null);
        var ctxOut = _toAddOut!.call(attn[.., ..(int)s]);
        var hidden = _toOut![0].call(attn[.., (int)s..]);
        return (hidden.MoveToOuterDisposeScope(), ctxOut.MoveToOuterDisposeScope());
    }
}
