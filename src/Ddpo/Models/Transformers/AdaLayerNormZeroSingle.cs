using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>AdaLayerNormZeroSingle</c> (FLUX single blocks): <c>[shift, scale, gate] = linear(silu(emb))</c>,
/// <c>norm(x) * (1 + scale) + shift</c> with a parameter-free LayerNorm (eps 1e-6); the gate scales the block's output.
/// </summary>
internal sealed class AdaLayerNormZeroSingle : nn.Module
{
    [ComponentName(Name = "linear")] private readonly Linear _linear;
    private readonly long _dim;

    /// <summary>Creates the layer.</summary>
    public AdaLayerNormZeroSingle(int dim, Device? device, ScalarType? dtype) : base(nameof(AdaLayerNormZeroSingle))
    {
        _linear = nn.Linear(dim, 3L * dim, true, device, dtype);
        _dim = dim;
        RegisterComponents();
    }

    /// <summary>Returns the modulated x [B, L, dim] and the gate [B, dim].</summary>
    public (Tensor Modulated, Tensor Gate) Forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        var chunks = _linear.call(F.silu(emb)).chunk(3, 1);
        var normed = F.layer_norm(x, [_dim], null, null, 1e-6);
        var modulated = normed * (1 + chunks[1].unsqueeze(1)) + chunks[0].unsqueeze(1);
        return (modulated.MoveToOuterDisposeScope(), chunks[2].MoveToOuterDisposeScope());
    }
}
