using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>AdaLayerNormZero</c> (6 chunks) and <c>SD35AdaLayerNormZeroX</c> (9 chunks): <c>linear(silu(emb))</c>
/// split into shift/scale/gate triples, the first pair modulating a parameter-free LayerNorm (eps 1e-6) of x.
/// </summary>
internal sealed class AdaLayerNormZero : nn.Module
{
    [ComponentName(Name = "linear")] private readonly Linear _linear;
    private readonly long _dim;
    private readonly int _chunks;

    /// <summary>Creates the layer; <paramref name="chunks"/> is 6 (AdaLayerNormZero) or 9 (SD35AdaLayerNormZeroX).</summary>
    public AdaLayerNormZero(int dim, int chunks, Device? device, ScalarType? dtype) : base(nameof(AdaLayerNormZero))
    {
        if (chunks is not (6 or 9)) throw new ArgumentOutOfRangeException(nameof(chunks), chunks, "6 or 9");
        _linear = nn.Linear(dim, (long)chunks * dim, true, device, dtype);
        _dim = dim;
        _chunks = chunks;
        RegisterComponents();
    }

    /// <summary>
    /// Returns the modulated x (<c>norm(x) * (1 + scale_msa) + shift_msa</c>), the un-modulated <c>norm(x)</c>, and the
    /// chunks of the embedding, each [B, dim], in diffusers' order (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp,
    /// gate_mlp[, shift_msa2, scale_msa2, gate_msa2]).
    /// </summary>
    public (Tensor Modulated, Tensor Normed, Tensor[] Chunks) Forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        var chunks = _linear.call(F.silu(emb)).chunk(_chunks, 1);
        var normed = F.layer_norm(x, [_dim], null, null, 1e-6);
        var modulated = normed * (1 + chunks[1].unsqueeze(1)) + chunks[0].unsqueeze(1);
        foreach (var c in chunks) c.MoveToOuterDisposeScope();
        return (modulated.MoveToOuterDisposeScope(), normed.MoveToOuterDisposeScope(), chunks);
    }
}

/// <summary>
/// diffusers <c>AdaLayerNormContinuous</c> (no affine, eps 1e-6): <c>norm(x) * (1 + scale) + shift</c> with
/// <c>[scale, shift] = linear(silu(cond))</c> (scale first, unlike AdaLayerNormZero).
/// </summary>
internal sealed class AdaLayerNormContinuous : nn.Module
{
    [ComponentName(Name = "linear")] private readonly Linear _linear;
    private readonly long _dim;

    /// <summary>Creates the layer for width <paramref name="dim"/> conditioned on <paramref name="conditioningDim"/>.</summary>
    public AdaLayerNormContinuous(int dim, int conditioningDim, Device? device, ScalarType? dtype) : base(nameof(AdaLayerNormContinuous))
    {
        _linear = nn.Linear(conditioningDim, 2L * dim, true, device, dtype);
        _dim = dim;
        RegisterComponents();
    }

    /// <summary>Modulates x [B, L, dim] by cond [B, conditioningDim].</summary>
    public Tensor Forward(Tensor x, Tensor cond)
    {
        using var scope = NewDisposeScope();
        var emb = _linear.call(F.silu(cond).to(x.dtype)).chunk(2, 1);
        var normed = F.layer_norm(x, [_dim], null, null, 1e-6);
        return (normed * (1 + emb[0].unsqueeze(1)) + emb[1].unsqueeze(1)).MoveToOuterDisposeScope();
    }
}
