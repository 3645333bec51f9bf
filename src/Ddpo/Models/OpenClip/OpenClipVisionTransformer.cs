using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.OpenClip;

/// <summary>
/// open_clip's <c>VisionTransformer</c> (the <c>visual</c> submodule): bias-free patch convolution <c>conv1</c>, class
/// token, learned <c>positional_embedding</c>, <c>ln_pre</c>, the transformer, <c>ln_post</c> of the class token and
/// the projection matrix <c>proj</c> [width, embed_dim] (applied as <c>x @ proj</c>).
/// </summary>
internal sealed class OpenClipVisionTransformer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the open_clip state-dict names
    private readonly Parameter class_embedding;
    private readonly Parameter positional_embedding;
    private readonly Parameter proj;
    private readonly Conv2d conv1;
    private readonly LayerNorm ln_pre;
    private readonly OpenClipTransformer transformer;
    private readonly LayerNorm ln_post;
#pragma warning restore IDE1006

    public OpenClipVisionTransformer(OpenClipConfig c, Device? device) : base("visual")
    {
        int w = c.VisionWidth;
        class_embedding = new Parameter(empty(w, device: device));
        positional_embedding = new Parameter(empty(c.Grid * c.Grid + 1, w, device: device));
        proj = new Parameter(empty(w, c.EmbedDim, device: device));
        conv1 = nn.Conv2d(3, w, c.PatchSize, stride: c.PatchSize, bias: false, device: device);
        ln_pre = nn.LayerNorm(w, 1e-5, device: device);
        transformer = new OpenClipTransformer(w, c.VisionLayers, c.VisionHeads, c.VisionMlpRatio, c.Activation, causal: false, device);
        ln_post = nn.LayerNorm(w, 1e-5, device: device);
        RegisterComponents();
    }

    /// <summary>The parameters' dtype and device.</summary>
    public Tensor Anchor => proj;

    /// <summary>Pixels [B, 3, S, S] (normalised) to image features [B, embed_dim] (not normalised): <c>encode_image</c>.</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        long b = pixels.shape[0];
        var patches = SafeConv.Call(conv1, pixels).flatten(2).transpose(1, 2);
        var cls = class_embedding.view(1, 1, -1).expand(b, 1, -1);
        var x = cat([cls, patches], 1) + positional_embedding;
        x = transformer.forward(ln_pre.forward(x));
        return ln_post.forward(x.select(1, 0)).matmul(proj).MoveToOuterDisposeScope();
    }
}
