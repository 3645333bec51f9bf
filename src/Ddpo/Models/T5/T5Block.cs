using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.T5;

/// <summary>transformers' <c>T5LayerSelfAttention</c>: pre-norm self-attention with a residual (<c>layer.0</c>).</summary>
internal sealed class T5LayerSelfAttention : nn.Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly T5Attention SelfAttention;
    private readonly T5LayerNorm layer_norm;
#pragma warning restore IDE1006

    public T5LayerSelfAttention(T5Config config, bool hasRelativeBias, Device? device) : base("0")
    {
        SelfAttention = new T5Attention(config, hasRelativeBias, device);
        layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon, device);
        RegisterComponents();
    }

    public T5Attention Attention => SelfAttention;

    public override Tensor forward(Tensor x, Tensor positionBias)
    {
        using var scope = NewDisposeScope();
        return (x + SelfAttention.forward(layer_norm.forward(x), positionBias)).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>T5LayerFF</c>: pre-norm feed-forward with a residual (<c>layer.1</c>).</summary>
internal sealed class T5LayerFF : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly T5FeedForward DenseReluDense;
    private readonly T5LayerNorm layer_norm;
#pragma warning restore IDE1006

    public T5LayerFF(T5Config config, Device? device) : base("1")
    {
        DenseReluDense = new T5FeedForward(config, device);
        layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon, device);
        RegisterComponents();
    }

    public T5FeedForward FeedForward => DenseReluDense;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return (x + DenseReluDense.forward(layer_norm.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// transformers' <c>T5Block</c> of the encoder: <c>layer.0</c> self-attention, <c>layer.1</c> feed-forward. In float16
/// the hidden states are clamped after each sub-layer (to ±(65504 − 1000) once any is infinite), as transformers does.
/// </summary>
internal sealed class T5Block : nn.Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly ModuleList<nn.Module> layer;
#pragma warning restore IDE1006

    public T5Block(T5Config config, bool hasRelativeBias, Device? device) : base("block")
    {
        layer = new ModuleList<nn.Module>(new T5LayerSelfAttention(config, hasRelativeBias, device), new T5LayerFF(config, device));
        RegisterComponents();
    }

    // Module-typed fields would be registered as extra sub-modules: the sub-layers are read from the list.
    private T5LayerSelfAttention SelfAttentionLayer => (T5LayerSelfAttention)layer[0];

    private T5LayerFF FeedForwardLayer => (T5LayerFF)layer[1];

    /// <summary>The block's attention (block 0 owns the relative-position table).</summary>
    public T5Attention Attention => SelfAttentionLayer.Attention;

    public void Initialize(double factor, Generator? generator)
    {
        SelfAttentionLayer.Attention.Initialize(factor, generator);
        FeedForwardLayer.FeedForward.Initialize(factor, generator);
    }

    public override Tensor forward(Tensor x, Tensor positionBias)
    {
        using var scope = NewDisposeScope();
        var h = ClampHalf(SelfAttentionLayer.forward(x, positionBias));
        h = ClampHalf(FeedForwardLayer.forward(h));
        return h.MoveToOuterDisposeScope();
    }

    private static Tensor ClampHalf(Tensor h)
    {
        if (h.dtype != ScalarType.Float16) return h;
        const double max = 65504.0;
        double clamp = h.isinf().any().item<bool>() ? max - 1000 : max;
        return h.clamp(-clamp, clamp);
    }
}
