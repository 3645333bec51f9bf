using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>transformers' <c>CLIPEncoderLayer</c>: pre-norm attention and MLP blocks with residuals.</summary>
internal sealed class ClipEncoderLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly ClipMlp mlp;
    private readonly LayerNorm layer_norm2;
#pragma warning restore IDE1006

    public ClipEncoderLayer(int hidden, int intermediate, int heads, string activation, double eps, bool causal, Device? device = null)
        : base("layer")
    {
        self_attn = new ClipAttention(hidden, heads, causal, device);
        layer_norm1 = nn.LayerNorm(hidden, eps, device: device);
        mlp = new ClipMlp(hidden, intermediate, activation, device);
        layer_norm2 = nn.LayerNorm(hidden, eps, device: device);
        RegisterComponents();
    }

    public void Initialize(int numLayers, Generator? generator)
    {
        self_attn.Initialize(numLayers, generator);
        mlp.Initialize(numLayers, generator);
        ClipInit.LayerNorm(layer_norm1);
        ClipInit.LayerNorm(layer_norm2);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.forward(layer_norm1.forward(x));
        var o = h + mlp.forward(layer_norm2.forward(h));
        return o.MoveToOuterDisposeScope();
    }
}
