using Ddpo.Base;

namespace Ddpo.Models.Blip;

/// <summary>
/// The sizes of BLIP's image encoder (<c>models/vit.py</c> <c>VisionTransformer</c> as BLIP's <c>create_vit</c> builds it:
/// qkv bias, GELU MLP, LayerNorm eps 1e-6, no representation layer). Defaults are <c>create_vit('large', 224)</c>, the
/// tower of ImageReward-v1.0 (THUDM/ImageReward <c>ImageReward/models/BLIP/blip.py</c> at c1392c6).
/// </summary>
internal sealed class BlipVisionConfig
{
    /// <summary>Input resolution; inputs must be exactly this size.</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>Patch size; must divide <see cref="ImageSize"/>.</summary>
    public int PatchSize { get; init; } = 16;

    /// <summary>Token width (<c>vision_width</c>, <c>embed_dim</c> in vit.py).</summary>
    public int Width { get; init; } = 1024;

    /// <summary>Number of blocks.</summary>
    public int Depth { get; init; } = 24;

    /// <summary>Attention heads.</summary>
    public int Heads { get; init; } = 16;

    /// <summary>MLP width as a multiple of <see cref="Width"/> (timm's <c>int(dim * mlp_ratio)</c>).</summary>
    public double MlpRatio { get; init; } = 4.0;

    /// <summary>LayerNorm epsilon (vit.py: <c>partial(nn.LayerNorm, eps=1e-6)</c>).</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>The MLP's hidden width.</summary>
    public int MlpHidden => (int)(Width * MlpRatio);

    /// <summary>Patches per image plus the class token.</summary>
    public int NumTokens => (ImageSize / PatchSize) * (ImageSize / PatchSize) + 1;

    /// <summary>Checks the sizes; <paramref name="source"/> names the config in the message.</summary>
    public void Validate(string source)
    {
        foreach (var (name, v) in new[] { ("image_size", ImageSize), ("vit.patch_size", PatchSize), ("vit.width", Width), ("vit.depth", Depth), ("vit.heads", Heads) })
        {
            if (v <= 0) throw new ConfigException($"{source}: field '{name}' = {v}, expected a positive integer");
        }
        if (ImageSize % PatchSize != 0) throw new ConfigException($"{source}: field 'vit.patch_size' = {PatchSize} does not divide 'image_size' = {ImageSize}");
        if (Width % Heads != 0) throw new ConfigException($"{source}: field 'vit.width' = {Width} is not divisible by 'vit.heads' = {Heads}");
        if (!(MlpRatio > 0) || MlpHidden <= 0) throw new ConfigException($"{source}: field 'vit.mlp_ratio' = {MlpRatio}, expected a positive number");
    }
}
