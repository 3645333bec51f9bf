using Ddpo.Models.Clip;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Blip;

/// <summary>
/// vit.py <c>Block</c>: pre-norm attention and MLP (timm <c>Mlp</c>: <c>fc1</c>, exact GELU, <c>fc2</c>) with residuals;
/// drop-path and dropout are identity at inference and have no weights, so they are left out.
/// </summary>
internal sealed class BlipVitBlock : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly LayerNorm norm1;
    private readonly BlipVitAttention attn;
    private readonly LayerNorm norm2;
    private readonly ClipMlp mlp;
#pragma warning restore IDE1006

    public BlipVitBlock(BlipVisionConfig c, Device? device = null) : base("block")
    {
        norm1 = nn.LayerNorm(c.Width, c.LayerNormEps, device: device);
        attn = new BlipVitAttention(c.Width, c.Heads, device);
        norm2 = nn.LayerNorm(c.Width, c.LayerNormEps, device: device);
        // Same layout as timm's Mlp (fc1 -> GELU -> fc2).
        mlp = new ClipMlp(c.Width, c.MlpHidden, "gelu", device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x + attn.forward(norm1.forward(x));
        return (h + mlp.forward(norm2.forward(h))).MoveToOuterDisposeScope();
    }
}
