using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Lora;

/// <summary>
/// A linear layer whose state dict is exactly <c>nn.Linear</c>'s (<c>weight</c>, optional <c>bias</c>), so base
/// checkpoints load strictly, and which can carry an optional <see cref="LoraAdapter"/> (not in the state dict):
/// <c>y = W x + b + scale * up(down(x))</c>.
/// </summary>
internal sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private Parameter _weight;
    [ComponentName(Name = "bias")] private Parameter? _bias;

    /// <summary>Input features.</summary>
    public long InFeatures { get; }

    /// <summary>Output features.</summary>
    public long OutFeatures { get; }

    /// <summary>The attached adapter, or null.</summary>
    public LoraAdapter? Adapter { get; internal set; }

    /// <summary>The base weight [out, in].</summary>
    public Parameter Weight => _weight;

    /// <summary>Creates the layer with PyTorch's <c>nn.Linear</c> default initialisation.</summary>
    public LoraLinear(long inFeatures, long outFeatures, bool bias = true, Device? device = null, ScalarType? dtype = null)
        : base(nameof(LoraLinear))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        _weight = new Parameter(empty([outFeatures, inFeatures], dtype: dtype, device: device), requires_grad: true);
        nn.init.kaiming_uniform_(_weight, a: Math.Sqrt(5.0));
        if (bias)
        {
            double bound = 1.0 / Math.Sqrt(inFeatures);
            _bias = new Parameter(empty([outFeatures], dtype: dtype, device: device), requires_grad: true);
            nn.init.uniform_(_bias, -bound, bound);
            _bias.DetachFromDisposeScope();
        }
        _weight.DetachFromDisposeScope();
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        var output = F.linear(input, _weight, _bias);
        return Adapter is null || !Adapter.Enabled ? output : output + Adapter.Delta(input);
    }
}
