using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>transformers' <c>CLIPAttention</c>: multi-head self-attention, causal for the text tower.</summary>
internal sealed class ClipAttention : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear out_proj;
#pragma warning restore IDE1006
    private readonly int _heads;
    private readonly bool _causal;

    public ClipAttention(int hidden, int heads, bool causal, Device? device = null) : base("self_attn")
    {
        q_proj = nn.Linear(hidden, hidden, device: device);
        k_proj = nn.Linear(hidden, hidden, device: device);
        v_proj = nn.Linear(hidden, hidden, device: device);
        out_proj = nn.Linear(hidden, hidden, device: device);
        _heads = heads;
        _causal = causal;
        RegisterComponents();
    }

    /// <summary>transformers' initialisation: normal q/k/v (std d^-0.5 (2L)^-0.5) and out (std d^-0.5), zero biases.</summary>
    public void Initialize(int numLayers, Generator? generator)
    {
        long d = q_proj.weight!.shape[1];
        double inStd = Math.Pow(d, -0.5) * Math.Pow(2 * numLayers, -0.5);
        foreach (var p in new[] { q_proj, k_proj, v_proj }) ClipInit.Linear(p, inStd, generator);
        ClipInit.Linear(out_proj, Math.Pow(d, -0.5), generator);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], e = x.shape[2];
        Tensor Heads(Tensor t) => t.view(b, s, _heads, e / _heads).transpose(1, 2);
        var q = Heads(q_proj.forward(x));
        var k = Heads(k_proj.forward(x));
        var v = Heads(v_proj.forward(x));
        var o = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: _causal);
        var merged = o.transpose(1, 2).reshape(b, s, e);
        return out_proj.forward(merged).MoveToOuterDisposeScope();
    }
}
