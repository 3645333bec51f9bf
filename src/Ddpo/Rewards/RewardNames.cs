namespace Ddpo.Rewards;

/// <summary>The names rewards are registered and configured under (<c>reward_fn</c>).</summary>
public static class RewardNames
{
    /// <summary>Negative JPEG size in kB (ddpo-pytorch <c>jpeg_compressibility</c>).</summary>
    public const string JpegCompressibility = "jpeg_compressibility";

    /// <summary>JPEG size in kB (ddpo-pytorch <c>jpeg_incompressibility</c>).</summary>
    public const string JpegIncompressibility = "jpeg_incompressibility";

    /// <summary>The LAION aesthetic predictor on CLIP ViT-L/14 (ddpo-pytorch <c>aesthetic_score</c>); registered by its implementation.</summary>
    public const string AestheticScore = "aesthetic_score";

    /// <summary>Prompt-image alignment by CLIP similarity; registered by its implementation.</summary>
    public const string ClipAlignment = "clip_alignment";
}
