using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPVisionConfig</c>. Defaults are transformers' defaults (ViT-B/32). A full
/// <c>CLIPModel</c> config (<c>model_type</c> <c>clip</c>) is read from its <c>vision_config</c>, with the
/// model's top-level <c>projection_dim</c> (the width of its <c>visual_projection</c>).
/// </summary>
internal sealed class ClipVisionConfig
{
    /// <summary>Width of the transformer (<c>hidden_size</c>).</summary>
    public int HiddenSize { get; init; } = 768;

    /// <summary>Width of the MLP (<c>intermediate_size</c>).</summary>
    public int IntermediateSize { get; init; } = 3072;

    /// <summary>Width of the image embedding (<c>projection_dim</c>).</summary>
    public int ProjectionDim { get; init; } = 512;

    /// <summary>Number of encoder layers (<c>num_hidden_layers</c>).</summary>
    public int NumHiddenLayers { get; init; } = 12;

    /// <summary>Number of attention heads (<c>num_attention_heads</c>).</summary>
    public int NumAttentionHeads { get; init; } = 12;

    /// <summary>Input channels (<c>num_channels</c>).</summary>
    public int NumChannels { get; init; } = 3;

    /// <summary>Input resolution (<c>image_size</c>); inputs must be exactly this size.</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>Patch size (<c>patch_size</c>); must divide <see cref="ImageSize"/>.</summary>
    public int PatchSize { get; init; } = 32;

    /// <summary>MLP activation (<c>hidden_act</c>): <c>quick_gelu</c> or <c>gelu</c>.</summary>
    public string HiddenAct { get; init; } = "quick_gelu";

    /// <summary>Layer-norm epsilon (<c>layer_norm_eps</c>).</summary>
    public double LayerNormEps { get; init; } = 1e-5;

    /// <summary>Number of patches per image plus the class token.</summary>
    public int NumPositions => (ImageSize / PatchSize) * (ImageSize / PatchSize) + 1;

    /// <summary>Reads a config; unsupported or malformed values are a <see cref="ConfigException"/> naming the field.</summary>
    public static ClipVisionConfig FromJson(JsonConfig json)
    {
        int? outerProjection = null;
        if (json.Root["vision_config"] is JsonObject nested)
        {
            outerProjection = json.GetIntOrNull("projection_dim");
            json = new JsonConfig(nested, json.Source + " (vision_config)");
        }
        var config = new ClipVisionConfig
        {
            HiddenSize = json.GetInt("hidden_size", 768),
            IntermediateSize = json.GetInt("intermediate_size", 3072),
            ProjectionDim = outerProjection ?? json.GetInt("projection_dim", 512),
            NumHiddenLayers = json.GetInt("num_hidden_layers", 12),
            NumAttentionHeads = json.GetInt("num_attention_heads", 12),
            NumChannels = json.GetInt("num_channels", 3),
            ImageSize = json.GetInt("image_size", 224),
            PatchSize = json.GetInt("patch_size", 32),
            HiddenAct = json.GetChoice("hidden_act", "quick_gelu", ClipActivation.Supported),
            LayerNormEps = json.GetDouble("layer_norm_eps", 1e-5),
        };
        config.Validate(json.Source);
        return config;
    }

    /// <summary>Reads a <c>config.json</c> file.</summary>
    public static ClipVisionConfig Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>The config as transformers writes it for <c>CLIPVisionModelWithProjection</c>.</summary>
    public JsonObject ToJson() => new()
    {
        ["architectures"] = new JsonArray("CLIPVisionModelWithProjection"),
        ["model_type"] = "clip_vision_model",
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["projection_dim"] = ProjectionDim,
        ["num_hidden_layers"] = NumHiddenLayers,
        ["num_attention_heads"] = NumAttentionHeads,
        ["num_channels"] = NumChannels,
        ["image_size"] = ImageSize,
        ["patch_size"] = PatchSize,
        ["hidden_act"] = HiddenAct,
        ["layer_norm_eps"] = LayerNormEps,
        ["attention_dropout"] = 0.0,
        ["initializer_factor"] = 1.0,
        ["initializer_range"] = 0.02,
    };

    /// <summary>Checks sizes and the activation; <paramref name="source"/> names the config in the message.</summary>
    public void Validate(string source = "vision model config")
    {
        ClipConfigChecks.Positive(source, ("hidden_size", HiddenSize), ("intermediate_size", IntermediateSize),
            ("projection_dim", ProjectionDim), ("num_hidden_layers", NumHiddenLayers),
            ("num_attention_heads", NumAttentionHeads), ("num_channels", NumChannels),
            ("image_size", ImageSize), ("patch_size", PatchSize));
        ClipConfigChecks.HeadsDivide(source, HiddenSize, NumAttentionHeads);
        ClipConfigChecks.Activation(source, HiddenAct);
        if (ImageSize % PatchSize != 0)
        {
            throw new ConfigException($"{source}: field 'patch_size' = {PatchSize} does not divide 'image_size' = {ImageSize}");
        }
    }
}
