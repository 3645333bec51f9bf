using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.T5;

/// <summary>
/// transformers' <c>T5Stack</c> as the encoder: token embedding (<c>embed_tokens</c>, the model's <c>shared</c>
/// embedding), the blocks (block 0's relative-position bias, plus the padding mask, is reused by all) and the final RMS norm.
/// </summary>
internal sealed class T5Stack : nn.Module<Tensor, Tensor?, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly Embedding embed_tokens;
    private readonly ModuleList<T5Block> block;
    private readonly T5LayerNorm final_layer_norm;
#pragma warning restore IDE1006

    public T5Stack(T5Config config, Embedding embedTokens, Device? device) : base("encoder")
    {
        embed_tokens = embedTokens;
        block = new ModuleList<T5Block>();
        for (int i = 0; i < config.NumLayers; i++) block.Add(new T5Block(config, hasRelativeBias: i == 0, device));
        final_layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon, device);
        RegisterComponents();
    }

    public void Initialize(double factor, Generator? generator)
    {
        foreach (var b in block) b.Initialize(factor, generator);
    }

    public override Tensor forward(Tensor ids, Tensor? attentionMask)
    {
        using var scope = NewDisposeScope();
        var h = embed_tokens.forward(ids);
        long s = ids.shape[1];
        var bias = block[0].Attention.ComputeBias(s, s).to(h.dtype);
        if (attentionMask is not null)
        {
            // transformers' extended mask: (1 - mask) · finfo(dtype).min on the keys.
            var keep = attentionMask.to(h.dtype, h.device).unsqueeze(1).unsqueeze(1);
            bias = bias + (1.0 - keep) * MinValue(h.dtype);
        }
        foreach (var b in block) h = b.forward(h, bias);
        return final_layer_norm.forward(h).MoveToOuterDisposeScope();
    }

    private static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };
}
