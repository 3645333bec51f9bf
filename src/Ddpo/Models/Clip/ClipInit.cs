using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>Parameter initialisation helpers (transformers' <c>CLIPPreTrainedModel._init_weights</c>).</summary>
internal static class ClipInit
{
    public static void Normal(Tensor t, double std, Generator? generator)
    {
        using (no_grad()) nn.init.normal_(t, 0, std, generator);
    }

    public static void Linear(Linear linear, double std, Generator? generator)
    {
        Normal(linear.weight!, std, generator);
        if (linear.bias is not null)
        {
            using (no_grad()) linear.bias.zero_();
        }
    }

    public static void LayerNorm(LayerNorm norm)
    {
        using (no_grad())
        {
            norm.weight!.fill_(1.0);
            norm.bias!.zero_();
        }
    }
}
