using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Blip;

/// <summary>
/// BLIP's image encoder (<c>models/vit.py</c> <c>VisionTransformer.forward</c>): patch embeddings after a class token,
/// plus learned position embeddings, the pre-norm blocks, then the final LayerNorm; returns every token
/// [B, 1 + patches, width] (the text encoder cross-attends to all of them).
/// </summary>
internal sealed class BlipVisionTransformer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly BlipPatchEmbed patch_embed;
    private readonly ModuleList<BlipVitBlock> blocks;
    private readonly LayerNorm norm;
#pragma warning restore IDE1006

    public BlipVisionTransformer(BlipVisionConfig c, Device? device = null) : base("visual_encoder")
    {
        c.Validate("BLIP vision config");
        Config = c;
        cls_token = new Parameter(zeros(1, 1, c.Width, device: device));
        pos_embed = new Parameter(zeros(1, c.NumTokens, c.Width, device: device));
        patch_embed = new BlipPatchEmbed(c, device);
        blocks = new ModuleList<BlipVitBlock>(Enumerable.Range(0, c.Depth).Select(_ => new BlipVitBlock(c, device)).ToArray());
        norm = nn.LayerNorm(c.Width, c.LayerNormEps, device: device);
        RegisterComponents();
    }

    /// <summary>The sizes.</summary>
    public BlipVisionConfig Config { get; }

    /// <summary>The patch-embedding weight (the model's device and dtype).</summary>
    public Tensor PatchWeight => patch_embed.Weight;

    /// <summary>Image tokens [B, 1 + patches, width] of pixel values [B, 3, image_size, image_size].</summary>
    public override Tensor forward(Tensor pixels)
    {
        int s = Config.ImageSize;
        if (pixels.dim() != 4 || pixels.shape[1] != 3 || pixels.shape[2] != s || pixels.shape[3] != s)
        {
            throw new ArgumentException($"pixel values must be [batch, 3, {s}, {s}], got [{string.Join(", ", pixels.shape)}]", nameof(pixels));
        }
        using var scope = NewDisposeScope();
        var x = patch_embed.forward(pixels);
        var cls = cls_token.expand(x.shape[0], -1, -1);
        x = cat([cls, x], 1) + pos_embed.narrow(1, 0, x.shape[1] + 1);
        foreach (var block in blocks) x = block.forward(x);
        return norm.forward(x).MoveToOuterDisposeScope();
    }
}
