namespace Ddpo.Rewards;

/// <summary>
/// The <c>[reward.ocr]</c> section: an OCR server for the <c>ocr</c> reward (<c>POST {base_url}/ocr</c>, docs/rewards.md).
/// </summary>
internal sealed class OcrRewardConfig
{
    /// <summary><c>base_url</c> of the OCR server; requests go to <c>POST {base_url}/ocr</c>.</summary>
    public string BaseUrl { get; set; } = "http://127.0.0.1:8091";

    /// <summary><c>batch_size</c>: images per request.</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary><c>timeout_s</c>: seconds before one request is abandoned (and retried).</summary>
    public double TimeoutS { get; set; } = 300;

    /// <summary><c>max_retries</c> after a failed request.</summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary><c>backoff_s</c>: the wait before the first retry, doubled for each further retry (capped at 60 s).</summary>
    public double BackoffS { get; set; } = 1;

    /// <summary><c>image_format</c> of the images sent: <c>png</c> (Flow-GRPO's OCR sees the raw pixels) or <c>jpeg</c>.</summary>
    public string ImageFormat { get; set; } = "png";
}

/// <summary>
/// The <c>[reward.geneval]</c> section: a GenEval reward server speaking Flow-GRPO's protocol in JSON (<c>geneval</c> reward).
/// </summary>
internal sealed class GenevalRewardConfig
{
    /// <summary><c>base_url</c>: requests go to <c>POST {base_url}</c> as is (Flow-GRPO posts to the server's root, port 18085).</summary>
    public string BaseUrl { get; set; } = "http://127.0.0.1:18085";

    /// <summary><c>batch_size</c>: images per request (Flow-GRPO: 64).</summary>
    public int BatchSize { get; set; } = 64;

    /// <summary><c>only_strict</c>: sent to the server; Flow-GRPO trains with true (only the strict reward is computed).</summary>
    public bool OnlyStrict { get; set; } = true;

    /// <summary><c>timeout_s</c>: seconds before one request is abandoned (and retried); Flow-GRPO: 120.</summary>
    public double TimeoutS { get; set; } = 120;

    /// <summary><c>max_retries</c> after a failed request.</summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary><c>backoff_s</c>: the wait before the first retry, doubled for each further retry (capped at 60 s).</summary>
    public double BackoffS { get; set; } = 1;
}

/// <summary>
/// The <c>[reward.vlm_score]</c> section: the <c>vlm_score</c> reward, a VLM's 1-5 or 0-10 rating of each image, asked
/// through the server of <c>[reward.vlm]</c>.
/// </summary>
internal sealed class VlmScoreRewardConfig
{
    /// <summary>
    /// <c>template</c>: the question, with <c>{prompt}</c> replaced by the image's prompt, or a preset name:
    /// <c>unifiedreward</c> (UnifiedReward's "Final Score:" template as Flow-GRPO asks it).
    /// </summary>
    public string Template { get; set; } = "unifiedreward";

    /// <summary><c>scale</c>: the range of the score the template asks for, <c>1-5</c> or <c>0-10</c>; scores are mapped to [0, 1].</summary>
    public string Scale { get; set; } = "1-5";

    /// <summary><c>max_tokens</c> of each answer (the rating templates ask for a reasoned answer ending in the score).</summary>
    public int MaxTokens { get; set; } = 512;
}
