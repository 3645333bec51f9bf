using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Transformers;

/// <summary>
/// Random initialisation of a fresh SD3 transformer from a caller's <see cref="Generator"/> (null: the global one):
/// PyTorch's default rule for linear and convolution layers (weights and biases uniform in ±1/sqrt(fan_in)) and RMS-norm
/// weights 1, as diffusers builds the model. Nothing is zeroed, the output projection included (diffusers does not
/// zero it either), so a fresh tiny model gives non-trivial outputs and gradients. Values are drawn in float32 on the
/// CPU (so a seed gives the same model on every device) and copied into place; meta tensors are left alone.
/// </summary>
internal static class SD3Init
{
    /// <summary>Re-draws every parameter of <paramref name="module"/>.</summary>
    public static void Apply(nn.Module module, Generator? generator)
    {
        var parameters = module.named_parameters().ToList();
        var fanIn = new Dictionary<string, long>();
        foreach (var (name, p) in parameters.Where(x => x.parameter.dim() >= 2))
        {
            fanIn[Owner(name)] = p.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        }
        using var _ = no_grad();
        foreach (var (name, p) in parameters)
        {
            if (p.device_type == DeviceType.META) continue;
            var owner = Owner(name);
            if (p.dim() == 1 && owner.Split('.').Last().StartsWith("norm", StringComparison.Ordinal))
            {
                p.fill_(1.0);
                continue;
            }
            long fan = fanIn.GetValueOrDefault(owner, p.shape[0]);
            double bound = 1.0 / Math.Sqrt(Math.Max(fan, 1));
            using var draw = rand(p.shape, dtype: ScalarType.Float32, generator: generator).mul_(2 * bound).sub_(bound);
            p.copy_(draw);
        }
    }

    private static string Owner(string name)
    {
        int dot = name.LastIndexOf('.');
        return dot < 0 ? "" : name[..dot];
    }
}
