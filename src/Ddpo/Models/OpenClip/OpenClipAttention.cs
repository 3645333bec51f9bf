using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.OpenClip;

/// <summary>
/// PyTorch's <c>nn.MultiheadAttention</c> as open_clip's blocks use it (self-attention, batch first here): one
/// stacked <c>in_proj_weight</c> [3·width, width] = [q; k; v] with <c>in_proj_bias</c>, and <c>out_proj</c>.
/// </summary>
internal sealed class OpenClipAttention : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the open_clip state-dict names
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
#pragma warning restore IDE1006
    private readonly int _heads;
    private readonly bool _causal;

    public OpenClipAttention(int width, int heads, bool causal, Device? device) : base("attn")
    {
        in_proj_weight = new Parameter(empty(3 * width, width, device: device));
        in_proj_bias = new Parameter(empty(3 * width, device: device));
        out_proj = nn.Linear(width, width, device: device);
        _heads = heads;
        _causal = causal;
        RegisterComponents();
    }

    /// <summary>x [B, L, width] to [B, L, width]; causal (the text tower's <c>attn_mask</c>) or full.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], l = x.shape[1], e = x.shape[2];
        var qkv = nn.functional.linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
        Tensor Heads(Tensor t) => t.reshape(b, l, _heads, e / _heads).transpose(1, 2);
        var o = nn.functional.scaled_dot_product_attention(Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]), is_casual: _causal);
        return out_proj.forward(o.transpose(1, 2).reshape(b, l, e)).MoveToOuterDisposeScope();
    }
}
