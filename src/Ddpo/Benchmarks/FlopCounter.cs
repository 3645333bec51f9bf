using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Benchmarks;

/// <summary>
/// Counts the floating-point operations of one forward pass (2 per multiply-add) of convolutions,
/// linear layers and attention products, by hooking the modules during a real forward.
/// Norms, activations and element-wise ops are not counted (they are a few percent).
/// </summary>
internal static class FlopCounter
{
    /// <summary>Runs <paramref name="forward"/> once with hooks on <paramref name="model"/>'s layers; returns the FLOPs.</summary>
    public static double Count(nn.Module model, Action forward)
    {
        double flops = 0;
        var queries = new Dictionary<string, long[]>();
        var removers = new List<Action>();
        foreach (var (name, module) in model.named_modules())
        {
            if (module is not nn.Module<Tensor, Tensor> layer) continue;
            var weight = module.named_parameters(recurse: false).FirstOrDefault(p => p.name == "weight").parameter;
            if (weight is null || (weight.dim() != 2 && weight.dim() != 4)) continue;
            long perOutput = weight.dim() == 4 ? weight.shape[1] * weight.shape[2] * weight.shape[3] : weight.shape[1];
            string attention = name.EndsWith(".to_q") || name.EndsWith(".to_k") ? name[..name.LastIndexOf('.')] : "";
            bool isQuery = name.EndsWith(".to_q");
            var hook = layer.register_forward_hook((m, input, output) =>
            {
                flops += 2.0 * output.numel() * perOutput;
                if (attention.Length > 0 && output.dim() == 3)
                {
                    if (isQuery)
                    {
                        queries[attention] = output.shape;
                    }
                    else if (queries.TryGetValue(attention, out var q))
                    {
                        // softmax(Q K^T) V: two products of B x Lq x Lk x inner.
                        flops += 4.0 * q[0] * q[1] * output.shape[1] * q[2];
                    }
                }
                return output;
            });
            removers.Add(hook.remove);
        }
        try
        {
            using var _ = no_grad();
            forward();
        }
        finally
        {
            foreach (var remove in removers) remove();
        }
        return flops;
    }
}
