using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPVisionTransformer</c> (the <c>vision_model</c> submodule): embeddings,
/// <c>pre_layrnorm</c> (transformers' spelling), encoder, and <c>post_layernorm</c> of the class token.
/// </summary>
internal sealed class ClipVisionTransformer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly ClipVisionEmbeddings embeddings;
    private readonly LayerNorm pre_layrnorm;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm post_layernorm;
#pragma warning restore IDE1006

    /// <summary>Builds the tower on <paramref name="device"/> (null: the CPU; meta: shapes only), not initialised.</summary>
    public ClipVisionTransformer(ClipVisionConfig config, Device? device = null) : base("vision_model")
    {
        embeddings = new ClipVisionEmbeddings(config, device);
        pre_layrnorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        encoder = new ClipEncoder(config.NumHiddenLayers, config.HiddenSize, config.IntermediateSize,
            config.NumAttentionHeads, config.HiddenAct, config.LayerNormEps, causal: false, device);
        post_layernorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    /// <summary>The patch-embedding weight (its device and dtype are the model's).</summary>
    public Tensor PatchWeight => embeddings.PatchWeight;

    public void Initialize(Generator? generator)
    {
        embeddings.Initialize(generator);
        encoder.Initialize(generator);
        ClipInit.LayerNorm(pre_layrnorm);
        ClipInit.LayerNorm(post_layernorm);
    }

    /// <summary>Pixel values [B, C, H, W] to the pooled output: the post-layer-normed class token [B, hidden].</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var hidden = encoder.forward(pre_layrnorm.forward(embeddings.forward(pixels)));
        var pooled = post_layernorm.forward(hidden.select(1, 0));
        return pooled.MoveToOuterDisposeScope();
    }
}
