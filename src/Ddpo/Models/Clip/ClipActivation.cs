using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>The MLP activations of CLIP (<c>hidden_act</c>).</summary>
internal static class ClipActivation
{
    /// <summary>The supported values of <c>hidden_act</c>.</summary>
    public static readonly string[] Supported = ["quick_gelu", "gelu"];

    /// <summary>Applies <paramref name="name"/>: <c>quick_gelu</c> = x·sigmoid(1.702x), <c>gelu</c> = exact (erf) GELU.</summary>
    public static Tensor Apply(string name, Tensor x) => name switch
    {
        "quick_gelu" => x * torch.sigmoid(x * 1.702),
        "gelu" => nn.functional.gelu(x),
        _ => throw new ArgumentException($"hidden_act '{name}' is not supported", nameof(name)),
    };
}
