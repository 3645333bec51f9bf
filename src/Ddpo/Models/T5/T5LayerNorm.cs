using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.T5;

/// <summary>
/// transformers' <c>T5LayerNorm</c>: RMS norm without mean or bias. The mean square is always taken in float32 (also
/// for a float64 model, as transformers does); the normed values go back to the weight's dtype when it is half/bf16.
/// </summary>
internal sealed class T5LayerNorm : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly Parameter weight;
#pragma warning restore IDE1006
    private readonly double _eps;

    public T5LayerNorm(int dim, double eps, Device? device) : base("layer_norm")
    {
        weight = new Parameter(ones(dim, device: device));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var variance = x.to(ScalarType.Float32).pow(2).mean([-1], keepdim: true);
        var h = x * torch.rsqrt(variance + _eps);
        if (weight.dtype is ScalarType.Float16 or ScalarType.BFloat16) h = h.to(weight.dtype);
        return (weight * h).MoveToOuterDisposeScope();
    }
}
