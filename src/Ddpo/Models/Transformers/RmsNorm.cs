using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>RMSNorm</c> (the SD3.5 per-head q/k norms): <c>x * rsqrt(mean(x^2) + eps) * weight</c>. As diffusers,
/// the mean square is taken in float32 whatever the input dtype (so a float64 model matches diffusers' float64 run),
/// and the result is cast to the weight's dtype only when that is half precision.
/// </summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight;
    private readonly double _eps;

    /// <summary>Creates the norm with weight 1.</summary>
    public RmsNorm(long dim, double eps, Device? device, ScalarType? dtype) : base(nameof(RmsNorm))
    {
        _weight = new Parameter(ones([dim], dtype: dtype, device: device), requires_grad: true);
        _weight.DetachFromDisposeScope();
        _eps = eps;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var variance = x.to(ScalarType.Float32).pow(2).mean([-1], keepdim: true);
        var h = x * (variance + _eps).rsqrt();
        if (_weight.dtype is ScalarType.Float16 or ScalarType.BFloat16) h = h.to(_weight.dtype);
        return (h * _weight).MoveToOuterDisposeScope();
    }
}
