using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Loading;

/// <summary>
/// Re-draws a module's parameters from a private <see cref="Generator"/>, so that a random model depends
/// only on its seed (PyTorch's default initialisers draw from the process-wide generator, which other
/// threads may use at the same time). Uses PyTorch's default rule for linear and convolution layers:
/// weights and biases uniform in ±1/sqrt(fan_in); normalisation layers get weight 1 and bias 0.
/// </summary>
internal static class SeededInitializer
{
    /// <summary>Initialises every parameter of <paramref name="module"/> from <paramref name="seed"/>.</summary>
    public static void Apply(nn.Module module, long seed)
    {
        var generator = new Generator((ulong)seed);
        var parameters = module.named_parameters().ToList();
        var fanIn = new Dictionary<string, long>();
        foreach (var (name, p) in parameters)
        {
            if (p.dim() >= 2) fanIn[Prefix(name)] = p.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        }
        using var _ = no_grad();
        foreach (var (name, p) in parameters)
        {
            var owner = Prefix(name);
            bool isNorm = owner.Split('.').Last().Contains("norm", StringComparison.OrdinalIgnoreCase)
                || owner.EndsWith("layrnorm", StringComparison.Ordinal);
            if (p.dim() == 1 && isNorm)
            {
                if (name.EndsWith(".weight", StringComparison.Ordinal)) p.fill_(1.0);
                else p.zero_();
                continue;
            }
            long fan = p.dim() >= 2 ? p.shape.Skip(1).Aggregate(1L, (a, b) => a * b) : fanIn.GetValueOrDefault(owner, p.shape[0]);
            double bound = 1.0 / Math.Sqrt(Math.Max(fan, 1));
            using var draw = rand(p.shape, dtype: ScalarType.Float32, generator: generator).mul_(2 * bound).sub_(bound);
            p.copy_(draw);
        }
    }

    /// <summary>
    /// Transformer-style initialisation from <paramref name="seed"/>: matrices and embeddings normal with
    /// standard deviation <paramref name="std"/> (transformers uses 0.02), biases 0, norms weight 1 and bias 0.
    /// </summary>
    public static void ApplyNormal(nn.Module module, long seed, double std = 0.02)
    {
        var generator = new Generator((ulong)seed);
        using var _ = no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            if (p.dim() >= 2)
            {
                using var draw = randn(p.shape, dtype: ScalarType.Float32, generator: generator).mul_(std);
                p.copy_(draw);
            }
            else if (name.EndsWith(".weight", StringComparison.Ordinal))
            {
                p.fill_(1.0);
            }
            else
            {
                p.zero_();
            }
        }
    }

    private static string Prefix(string name)
    {
        int dot = name.LastIndexOf('.');
        return dot < 0 ? "" : name[..dot];
    }
}
