using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Models.OpenClip;

/// <summary>
/// An open_clip model config (<c>model_configs/ViT-H-14.json</c> format: <c>embed_dim</c>, <c>vision_cfg</c>,
/// <c>text_cfg</c>, optional <c>quick_gelu</c>) for the plain ViT + text-transformer <c>CLIP</c> that HPSv2 uses.
/// Read strictly: a key this implementation does not know, or one selecting a variant it does not implement (timm or
/// HF towers, attentional pooling, layer scale, ...), is a <see cref="ConfigException"/> naming the file and key.
/// </summary>
internal sealed class OpenClipConfig
{
    /// <summary>Width of the shared embedding space (<c>embed_dim</c>).</summary>
    public int EmbedDim { get; init; } = 512;

    /// <summary><c>quick_gelu</c>: x·sigmoid(1.702x) instead of the exact GELU (OpenAI-trained weights).</summary>
    public bool QuickGelu { get; init; }

    /// <summary><c>vision_cfg.image_size</c>.</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary><c>vision_cfg.patch_size</c>.</summary>
    public int PatchSize { get; init; } = 16;

    /// <summary><c>vision_cfg.width</c>.</summary>
    public int VisionWidth { get; init; } = 768;

    /// <summary><c>vision_cfg.layers</c>.</summary>
    public int VisionLayers { get; init; } = 12;

    /// <summary><c>vision_cfg.head_width</c> (heads = width / head_width).</summary>
    public int VisionHeadWidth { get; init; } = 64;

    /// <summary><c>vision_cfg.mlp_ratio</c>.</summary>
    public double VisionMlpRatio { get; init; } = 4.0;

    /// <summary><c>text_cfg.context_length</c>.</summary>
    public int ContextLength { get; init; } = 77;

    /// <summary><c>text_cfg.vocab_size</c>.</summary>
    public int VocabSize { get; init; } = 49408;

    /// <summary><c>text_cfg.width</c>.</summary>
    public int TextWidth { get; init; } = 512;

    /// <summary><c>text_cfg.heads</c>.</summary>
    public int TextHeads { get; init; } = 8;

    /// <summary><c>text_cfg.layers</c>.</summary>
    public int TextLayers { get; init; } = 12;

    /// <summary><c>text_cfg.mlp_ratio</c>.</summary>
    public double TextMlpRatio { get; init; } = 4.0;

    /// <summary>Vision heads.</summary>
    public int VisionHeads => VisionWidth / VisionHeadWidth;

    /// <summary>Patches per side.</summary>
    public int Grid => ImageSize / PatchSize;

    /// <summary>The activation name in <see cref="Clip.ClipActivation"/>'s terms.</summary>
    public string Activation => QuickGelu ? "quick_gelu" : "gelu";

    // Keys accepted with their neutral values only (anything else selects an unimplemented variant).
    private static readonly Dictionary<string, object?[]> VisionNeutral = new()
    {
        ["ls_init_value"] = [null], ["patch_dropout"] = [0, 0.0], ["global_average_pool"] = [false], ["attentional_pool"] = [false],
        ["input_patchnorm"] = [false], ["output_tokens"] = [false], ["timm_model_name"] = [null],
    };

    private static readonly Dictionary<string, object?[]> TextNeutral = new()
    {
        ["ls_init_value"] = [null], ["hf_model_name"] = [null], ["hf_tokenizer_name"] = [null], ["proj"] = [null, "linear"],
        ["embed_cls"] = [false], ["output_tokens"] = [false], ["pad_id"] = [0],
    };

    /// <summary>Reads an open_clip model-config file.</summary>
    public static OpenClipConfig Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>Reads a parsed open_clip model config.</summary>
    public static OpenClipConfig FromJson(JsonConfig json)
    {
        // custom_text moves the text tower under "text." (other keys); model_name is what the manifests add.
        Known(json, ["embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "model_name"], new() { ["custom_text"] = [false] });
        var vision = Section(json, "vision_cfg");
        var text = Section(json, "text_cfg");
        Known(vision, ["image_size", "patch_size", "width", "layers", "head_width", "mlp_ratio"], VisionNeutral);
        Known(text, ["context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"], TextNeutral);
        var config = new OpenClipConfig
        {
            EmbedDim = json.GetInt("embed_dim", 512),
            QuickGelu = json.GetBool("quick_gelu", false),
            ImageSize = vision.GetInt("image_size", 224),
            PatchSize = vision.GetInt("patch_size", 16),
            VisionWidth = vision.GetInt("width", 768),
            VisionLayers = vision.GetInt("layers", 12),
            VisionHeadWidth = vision.GetInt("head_width", 64),
            VisionMlpRatio = vision.GetDouble("mlp_ratio", 4.0),
            ContextLength = text.GetInt("context_length", 77),
            VocabSize = text.GetInt("vocab_size", 49408),
            TextWidth = text.GetInt("width", 512),
            TextHeads = text.GetInt("heads", 8),
            TextLayers = text.GetInt("layers", 12),
            TextMlpRatio = text.GetDouble("mlp_ratio", 4.0),
        };
        config.Validate(json.Source);
        return config;
    }

    private void Validate(string source)
    {
        foreach (var (name, value) in new[] { ("embed_dim", EmbedDim), ("vision_cfg.image_size", ImageSize), ("vision_cfg.patch_size", PatchSize),
                     ("vision_cfg.width", VisionWidth), ("vision_cfg.layers", VisionLayers), ("vision_cfg.head_width", VisionHeadWidth),
                     ("text_cfg.context_length", ContextLength), ("text_cfg.vocab_size", VocabSize), ("text_cfg.width", TextWidth),
                     ("text_cfg.heads", TextHeads), ("text_cfg.layers", TextLayers) })
        {
            if (value < 1) throw new ConfigException($"{source}: field '{name}' must be positive, got {value}");
        }
        if (ImageSize % PatchSize != 0) throw new ConfigException($"{source}: field 'vision_cfg.image_size' = {ImageSize} is not a multiple of patch_size {PatchSize}");
        if (VisionWidth % VisionHeadWidth != 0) throw new ConfigException($"{source}: field 'vision_cfg.head_width' = {VisionHeadWidth} does not divide width {VisionWidth}");
        if (TextWidth % TextHeads != 0) throw new ConfigException($"{source}: field 'text_cfg.heads' = {TextHeads} does not divide width {TextWidth}");
    }

    private static JsonConfig Section(JsonConfig json, string name) => json.Root[name] switch
    {
        JsonObject o => new JsonConfig(o, $"{json.Source} ({name})"),
        null => throw new ConfigException($"{json.Source}: field '{name}' is missing (an open_clip model config has vision_cfg and text_cfg)"),
        var other => throw new ConfigException($"{json.Source}: field '{name}' expected an object, got {other.ToJsonString()}"),
    };

    private static void Known(JsonConfig json, string[] used, Dictionary<string, object?[]> neutral)
    {
        foreach (var (key, _) in json.Root)
        {
            if (used.Contains(key)) continue;
            if (neutral.TryGetValue(key, out var values))
            {
                json.RequireUnset(key, "not implemented for open_clip here", values);
                continue;
            }
            throw new ConfigException($"{json.Source}: unknown field '{key}' (supported: {string.Join(", ", used.Concat(neutral.Keys))})");
        }
    }
}
