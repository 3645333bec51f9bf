using Ddpo.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Blocks;

/// <summary>
/// diffusers <c>Attention</c> with the SDPA processor: multi-head (cross-)attention with projections
/// <c>to_q</c>, <c>to_k</c>, <c>to_v</c>, <c>to_out.0</c> (LoRA-capable), an optional input <c>group_norm</c>,
/// residual connection and output rescaling (VAE mid-block style, which accepts [B, C, H, W] input).
/// </summary>
internal sealed class Attention : nn.Module
{
    [ComponentName(Name = "group_norm")] private readonly GroupNorm? _groupNorm;
    [ComponentName(Name = "to_q")] private readonly LoraLinear _toQ;
    [ComponentName(Name = "to_k")] private readonly LoraLinear _toK;
    [ComponentName(Name = "to_v")] private readonly LoraLinear _toV;
    [ComponentName(Name = "to_out")] private readonly ModuleList<LoraLinear> _toOut;
    private readonly int _heads;
    private readonly int _headDim;
    private readonly bool _upcast;
    private readonly bool _residual;
    private readonly double _rescale;
    private readonly double _dropout;

    /// <summary>Creates the layer. <paramref name="crossAttentionDim"/> null means self-attention.</summary>
    public Attention(int queryDim, int? crossAttentionDim, int heads, int headDim, bool bias, bool upcast,
        ModuleOptions o, int? normGroups = null, double eps = 1e-5, bool residual = false, double rescale = 1.0,
        double dropout = 0.0) : base(nameof(Attention))
    {
        int inner = heads * headDim;
        int kvDim = crossAttentionDim ?? queryDim;
        _groupNorm = normGroups is int g ? o.GroupNorm(g, queryDim, eps) : null;
        _toQ = new LoraLinear(queryDim, inner, bias, o.Device, o.DType);
        _toK = new LoraLinear(kvDim, inner, bias, o.Device, o.DType);
        _toV = new LoraLinear(kvDim, inner, bias, o.Device, o.DType);
        _toOut = new ModuleList<LoraLinear>(new LoraLinear(inner, queryDim, true, o.Device, o.DType));
        _heads = heads;
        _headDim = headDim;
        _upcast = upcast;
        _residual = residual;
        _rescale = rescale;
        _dropout = dropout;
        RegisterComponents();
    }

    /// <summary>
    /// Attends from <paramref name="x"/> ([B, L, C] or [B, C, H, W]) to <paramref name="context"/>
    /// ([B, S, D]; null: self-attention).
    /// </summary>
    public Tensor Forward(Tensor x, Tensor? context = null)
    {
        var residual = x;
        long b = x.shape[0];
        bool spatial = x.dim() == 4;
        long c = 0, h = 0, w = 0;
        var hidden = x;
        if (spatial)
        {
            (c, h, w) = (x.shape[1], x.shape[2], x.shape[3]);
            hidden = x.view(b, c, h * w);
            if (_groupNorm is not null) hidden = _groupNorm.call(hidden);
            hidden = hidden.transpose(1, 2);
        }
        else if (_groupNorm is not null)
        {
            hidden = _groupNorm.call(hidden.transpose(1, 2)).transpose(1, 2);
        }
        var kv = context ?? hidden;
        var q = _toQ.call(hidden).view(b, -1, _heads, _headDim).transpose(1, 2);
        var k = _toK.call(kv).view(b, -1, _heads, _headDim).transpose(1, 2);
        var v = _toV.call(kv).view(b, -1, _heads, _headDim).transpose(1, 2);
        var attn = AttentionKernel.Compute(q, k, v, _upcast);
        var output = _toOut[0].call(attn.transpose(1, 2).reshape(b, -1, (long)_heads * _headDim));
        if (_dropout > 0 && training) output = F.dropout(output, _dropout, true);
        if (spatial) output = output.transpose(1, 2).reshape(b, c, h, w);
        if (_residual) output = output + residual;
        return _rescale == 1.0 ? output : output / _rescale;
    }
}
