namespace Ddpo.Rewards;

/// <summary>
/// The <c>[reward]</c> section: settings of the learned and remote rewards, in one sub-table each
/// (<c>[reward.aesthetic]</c>, <c>[reward.bertscore]</c>, <c>[reward.vlm]</c>, <c>[reward.server]</c>).
/// Only the rewards that <c>reward_fn</c> (or the <c>rewards</c> table) names read them.
/// </summary>
public sealed class RewardConfig
{
    /// <summary><c>[reward.aesthetic]</c>: the LAION aesthetic predictor (<c>aesthetic_score</c>).</summary>
    public AestheticRewardConfig Aesthetic { get; set; } = new();

    /// <summary><c>[reward.imagereward]</c>: ImageReward (<c>imagereward</c>).</summary>
    public ImageRewardRewardConfig ImageReward { get; set; } = new();

    /// <summary><c>[reward.bertscore]</c>: the in-process BERTScore used by <c>prompt_image_alignment</c>.</summary>
    public BertScoreRewardConfig BertScore { get; set; } = new();

    /// <summary><c>[reward.vlm]</c>: the vision-language model server (OpenAI-compatible chat completions).</summary>
    public VlmRewardConfig Vlm { get; set; } = new();

    /// <summary><c>[reward.server]</c>: a reward model behind the JSON reward protocol (<c>remote</c>).</summary>
    public RewardServerConfig Server { get; set; } = new();

    /// <summary><c>[reward.ocr]</c>: the OCR server of the <c>ocr</c> reward (internal: set through config keys).</summary>
    internal OcrRewardConfig Ocr { get; set; } = new();

    /// <summary><c>[reward.geneval]</c>: the GenEval server of the <c>geneval</c> reward.</summary>
    internal GenevalRewardConfig Geneval { get; set; } = new();

    /// <summary><c>[reward.vlm_score]</c>: the template and scale of the <c>vlm_score</c> reward.</summary>
    internal VlmScoreRewardConfig VlmScore { get; set; } = new();
    /// <summary><c>[reward.pickscore]</c>: PickScore_v1 (<c>pickscore</c>).</summary>
    public ClipModelRewardConfig PickScore { get; set; } = new();

    /// <summary><c>[reward.clipscore]</c>: a CLIP model for Flow-GRPO's CLIP score (<c>clipscore</c>).</summary>
    public ClipModelRewardConfig ClipScore { get; set; } = new();

    /// <summary><c>[reward.hpsv2]</c>: HPSv2.1 (<c>hpsv2</c>).</summary>
    public Hpsv2RewardConfig Hpsv2 { get; set; } = new();
}

/// <summary>The <c>[reward.pickscore]</c> and <c>[reward.clipscore]</c> sections (a transformers <c>CLIPModel</c> and its processor).</summary>
public sealed class ClipModelRewardConfig
{
    /// <summary><c>model</c>: a transformers <c>CLIPModel</c> folder (<c>config.json</c>, <c>model.safetensors</c>).</summary>
    public string Model { get; set; } = "";

    /// <summary>
    /// <c>processor</c>: a <c>CLIPProcessor</c> folder (<c>preprocessor_config.json</c>, <c>vocab.json</c>, <c>merges.txt</c>);
    /// <c>""</c> = the model folder.
    /// </summary>
    public string Processor { get; set; } = "";

    /// <summary><c>batch_size</c>: images per model pass.</summary>
    public int BatchSize { get; set; } = 16;
}

/// <summary>The <c>[reward.hpsv2]</c> section.</summary>
public sealed class Hpsv2RewardConfig
{
    /// <summary><c>model</c>: a folder with one open_clip model config (<c>*.json</c>) and one weights file (<c>*.safetensors</c>, or <c>HPS_v2.1_compressed.pt</c>).</summary>
    public string Model { get; set; } = "";

    /// <summary><c>processor</c> (the reference keeps its tokenizer apart): open_clip's <c>bpe_simple_vocab_16e6.txt.gz</c> (or a folder holding one <c>*.txt.gz</c>); <c>""</c> = look in the model folder.</summary>
    public string Processor { get; set; } = "";

    /// <summary><c>batch_size</c>: images per model pass.</summary>
    public int BatchSize { get; set; } = 16;
}

/// <summary>The <c>[reward.aesthetic]</c> section.</summary>
public sealed class AestheticRewardConfig
{
    /// <summary><c>clip_model</c>: a transformers CLIP ViT-L/14 folder (<c>CLIPModel</c> or <c>CLIPVisionModelWithProjection</c>, safetensors).</summary>
    public string ClipModel { get; set; } = "";

    /// <summary><c>head</c>: the LAION aesthetic predictor head as safetensors (<c>layers.{0,2,4,6,7}.{weight,bias}</c>).</summary>
    public string Head { get; set; } = "";

    /// <summary><c>batch_size</c>: images per CLIP forward pass.</summary>
    public int BatchSize { get; set; } = 16;
}

/// <summary>The <c>[reward.imagereward]</c> section.</summary>
public sealed class ImageRewardRewardConfig
{
    /// <summary>
    /// <c>model</c>: an ImageReward folder (<c>model.safetensors</c> or <c>ImageReward.pt</c>, with <c>med_config.json</c> and,
    /// for sizes other than ImageReward-v1.0's, <c>config.json</c>), or the weight file itself (<c>ImageReward.pt</c> is read
    /// by the restricted unpickler).
    /// </summary>
    public string Model { get; set; } = "";

    /// <summary><c>processor</c> (the reference keeps its tokenizer apart): the <c>bert-base-uncased</c> tokenizer folder (<c>vocab.txt</c>); <c>""</c> = the model folder.</summary>
    public string Processor { get; set; } = "";

    /// <summary><c>batch_size</c>: pairs per forward pass.</summary>
    public int BatchSize { get; set; } = 16;
}

/// <summary>The <c>[reward.bertscore]</c> section.</summary>
public sealed class BertScoreRewardConfig
{
    /// <summary>
    /// <c>model</c>: a BERT-family transformers folder (<c>config.json</c>, <c>model.safetensors</c>, <c>vocab.txt</c>);
    /// <c>""</c> uses the built-in all-MiniLM-L6-v2 (offline, shipped by a NuGet package).
    /// </summary>
    public string Model { get; set; } = "";

    /// <summary>
    /// <c>num_layers</c>: token embeddings from the output of this many encoder layers (bert-score's <c>num_layers</c>;
    /// 0 = the embedding layer); -1 = all layers.
    /// </summary>
    public int NumLayers { get; set; } = -1;

    /// <summary><c>idf</c>: weight tokens by inverse document frequency over each batch's references (bert-score's <c>idf=True</c>).</summary>
    public bool Idf { get; set; }

    /// <summary><c>baseline</c>: a bert-score baseline TSV (<c>LAYER,P,R,F</c>); when set, scores are rescaled as <c>(s - b) / (1 - b)</c>.</summary>
    public string Baseline { get; set; } = "";
}

/// <summary>The <c>[reward.vlm]</c> section.</summary>
public sealed class VlmRewardConfig
{
    /// <summary><c>base_url</c> of an OpenAI-compatible API (vLLM, SGLang, llama.cpp server, Ollama), e.g. <c>http://127.0.0.1:8000/v1</c>.</summary>
    public string BaseUrl { get; set; } = "http://127.0.0.1:8000/v1";

    /// <summary><c>model</c> name sent with each request; <c>""</c> = the first model the server lists at <c>GET {base_url}/models</c>.</summary>
    public string Model { get; set; } = "";

    /// <summary><c>api_key_env</c>: the environment variable holding the API key (sent as a Bearer token when set and non-empty).</summary>
    public string ApiKeyEnv { get; set; } = "DDPO_VLM_API_KEY";

    /// <summary><c>question</c> asked about each image by <c>prompt_image_alignment</c>.</summary>
    public string Question { get; set; } = "Answer concisely: what is going on in this image?";

    /// <summary><c>max_tokens</c> of each answer.</summary>
    public int MaxTokens { get; set; } = 64;

    /// <summary><c>temperature</c> of the answers (0 = greedy).</summary>
    public double Temperature { get; set; }

    /// <summary><c>max_concurrency</c>: requests in flight at once (the server batches concurrent requests).</summary>
    public int MaxConcurrency { get; set; } = 8;

    /// <summary><c>timeout_s</c>: seconds before one request is abandoned (and retried).</summary>
    public double TimeoutS { get; set; } = 120;

    /// <summary><c>max_retries</c> after a failed request (connection error, timeout, HTTP 408/429/5xx, malformed answer).</summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary><c>backoff_s</c>: the wait before the first retry, doubled for each further retry (capped at 60 s).</summary>
    public double BackoffS { get; set; } = 1;

    /// <summary><c>image_format</c> of the images sent: <c>png</c> or <c>jpeg</c>.</summary>
    public string ImageFormat { get; set; } = "png";
}

/// <summary>The <c>[reward.server]</c> section.</summary>
public sealed class RewardServerConfig
{
    /// <summary><c>base_url</c> of a reward server; requests go to <c>POST {base_url}/score</c>.</summary>
    public string BaseUrl { get; set; } = "http://127.0.0.1:8090";

    /// <summary><c>batch_size</c>: images per request.</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary><c>timeout_s</c>: seconds before one request is abandoned (and retried).</summary>
    public double TimeoutS { get; set; } = 300;

    /// <summary><c>max_retries</c> after a failed request.</summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary><c>backoff_s</c>: the wait before the first retry, doubled for each further retry (capped at 60 s).</summary>
    public double BackoffS { get; set; } = 1;

    /// <summary><c>image_format</c> of the images sent: <c>png</c> or <c>jpeg</c>.</summary>
    public string ImageFormat { get; set; } = "png";
}
