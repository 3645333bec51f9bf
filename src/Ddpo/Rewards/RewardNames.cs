namespace Ddpo.Rewards;

/// <summary>The names rewards are registered and configured under (<c>reward_fn</c>).</summary>
public static class RewardNames
{
    /// <summary>Not a reward: <c>reward_fn = "weighted"</c> sums the rewards of the <c>rewards</c> table with their weights.</summary>
    public const string Weighted = "weighted";

    /// <summary>Negative JPEG size in kB (ddpo-pytorch <c>jpeg_compressibility</c>).</summary>
    public const string JpegCompressibility = "jpeg_compressibility";

    /// <summary>JPEG size in kB (ddpo-pytorch <c>jpeg_incompressibility</c>).</summary>
    public const string JpegIncompressibility = "jpeg_incompressibility";

    /// <summary>The LAION aesthetic predictor on CLIP ViT-L/14 (ddpo-pytorch <c>aesthetic_score</c>); registered by its implementation.</summary>
    public const string AestheticScore = "aesthetic_score";

    /// <summary>
    /// Prompt-image alignment as in the paper (ddpo-pytorch <c>llava_bertscore</c>): BERTScore recall of a VLM's
    /// description against "The image contains {prompt}"; registered by <c>Ddpo.RewardFactory</c>.
    /// </summary>
    public const string PromptImageAlignment = "prompt_image_alignment";

    /// <summary>Fraction of metadata questions a VLM answers as expected (ddpo-pytorch <c>llava_strict_satisfaction</c>).</summary>
    public const string VlmStrictSatisfaction = "vlm_strict_satisfaction";

    /// <summary>ImageReward-v1.0 (THUDM/ImageReward): BLIP image-text reward model of human preference; registered by <c>Ddpo.RewardFactory</c>.</summary>
    public const string ImageReward = "imagereward";

    /// <summary>A reward server speaking the JSON reward protocol (docs/rewards.md).</summary>
    public const string Remote = "remote";

    /// <summary>
    /// Text rendering (Flow-GRPO <c>ocr</c>): an OCR server reads each image, scored by edit distance against the
    /// prompt's quoted text; registered by <c>Ddpo.RewardFactory</c>.
    /// </summary>
    public const string Ocr = "ocr";

    /// <summary>GenEval's object detector behind Flow-GRPO's reward-server protocol (Flow-GRPO <c>geneval</c>), with GenEval metadata per prompt.</summary>
    public const string Geneval = "geneval";

    /// <summary>A VLM's rating (1-5 or 0-10) of each image for its prompt, mapped to [0, 1] (Flow-GRPO <c>unifiedreward</c>).</summary>
    public const string VlmScore = "vlm_score";

    /// <summary>RMS contrast of the image's luminance (an image-statistics score, handy as a watch reward).</summary>
    public const string ImageContrast = "image_contrast";

    /// <summary>Mean luminance of the image, in [0, 1].</summary>
    public const string Brightness = "brightness";

    /// <summary>Hasler and Süsstrunk's colourfulness (an image-statistics score, handy as a watch reward).</summary>
    public const string Colorfulness = "colorfulness";

    /// <summary>PickScore (CLIP ViT-H/14 fine-tuned on Pick-a-Pic) as Flow-GRPO's <c>pickscore</c>: <c>logit_scale.exp() · cos / 26</c>.</summary>
    public const string PickScore = "pickscore";

    /// <summary>CLIP score as Flow-GRPO's <c>clipscore</c> (openai CLIP ViT-L/14): <c>logit_scale.exp() · cos / 30</c>.</summary>
    public const string ClipScore = "clipscore";

    /// <summary>HPSv2.1 (open_clip ViT-H/14) as hpsv2's <c>img_score.score</c>: the cosine of image and prompt features.</summary>
    public const string Hpsv2 = "hpsv2";
}
