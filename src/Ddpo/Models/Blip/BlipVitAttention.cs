using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Blip;

/// <summary>vit.py <c>Attention</c>: one fused <c>qkv</c> projection (with bias), softmax(q kᵀ / √d) v, then <c>proj</c>.</summary>
internal sealed class BlipVitAttention : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly Linear qkv;
    private readonly Linear proj;
#pragma warning restore IDE1006
    private readonly int _heads;

    public BlipVitAttention(int width, int heads, Device? device = null) : base("attn")
    {
        qkv = nn.Linear(width, 3 * width, device: device);
        proj = nn.Linear(width, width, device: device);
        _heads = heads;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        // [B, N, 3, heads, d] -> [3, B, heads, N, d], as vit.py's reshape/permute.
        var parts = qkv.forward(x).reshape(b, n, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4);
        var o = nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2]);
        return proj.forward(o.transpose(1, 2).reshape(b, n, c)).MoveToOuterDisposeScope();
    }
}
