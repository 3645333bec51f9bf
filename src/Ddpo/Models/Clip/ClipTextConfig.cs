using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPTextConfig</c> (the <c>config.json</c> of a Stable Diffusion <c>text_encoder</c>
/// folder). Defaults are transformers' defaults. A full <c>CLIPModel</c> config (<c>model_type</c>
/// <c>clip</c>) is read from its <c>text_config</c>.
/// </summary>
internal sealed class ClipTextConfig
{
    /// <summary>Number of token ids (<c>vocab_size</c>).</summary>
    public int VocabSize { get; init; } = 49408;

    /// <summary>Width of the transformer (<c>hidden_size</c>).</summary>
    public int HiddenSize { get; init; } = 512;

    /// <summary>Width of the MLP (<c>intermediate_size</c>).</summary>
    public int IntermediateSize { get; init; } = 2048;

    /// <summary>Number of encoder layers (<c>num_hidden_layers</c>).</summary>
    public int NumHiddenLayers { get; init; } = 12;

    /// <summary>Number of attention heads (<c>num_attention_heads</c>).</summary>
    public int NumAttentionHeads { get; init; } = 8;

    /// <summary>Context length (<c>max_position_embeddings</c>).</summary>
    public int MaxPositionEmbeddings { get; init; } = 77;

    /// <summary>MLP activation (<c>hidden_act</c>): <c>quick_gelu</c> (SD 1.x) or <c>gelu</c> (SD 2.x).</summary>
    public string HiddenAct { get; init; } = "quick_gelu";

    /// <summary>Layer-norm epsilon (<c>layer_norm_eps</c>).</summary>
    public double LayerNormEps { get; init; } = 1e-5;

    /// <summary>Start token id (<c>bos_token_id</c>).</summary>
    public int BosTokenId { get; init; } = 49406;

    /// <summary>End token id (<c>eos_token_id</c>); the pooled output is taken at its first occurrence (legacy arg-max of the ids when 2).</summary>
    public int EosTokenId { get; init; } = 49407;

    /// <summary>Padding id (<c>pad_token_id</c>; informational).</summary>
    public int PadTokenId { get; init; } = 1;

    /// <summary>Projection width of the full CLIP model (<c>projection_dim</c>; unused by the text encoder itself).</summary>
    public int ProjectionDim { get; init; } = 512;

    /// <summary>Reads a config; unsupported or malformed values are a <see cref="ConfigException"/> naming the field.</summary>
    public static ClipTextConfig FromJson(JsonConfig json)
    {
        if (json.Root["text_config"] is JsonObject nested)
        {
            json = new JsonConfig(nested, json.Source + " (text_config)");
        }
        var config = new ClipTextConfig
        {
            VocabSize = json.GetInt("vocab_size", 49408),
            HiddenSize = json.GetInt("hidden_size", 512),
            IntermediateSize = json.GetInt("intermediate_size", 2048),
            NumHiddenLayers = json.GetInt("num_hidden_layers", 12),
            NumAttentionHeads = json.GetInt("num_attention_heads", 8),
            MaxPositionEmbeddings = json.GetInt("max_position_embeddings", 77),
            HiddenAct = json.GetChoice("hidden_act", "quick_gelu", ClipActivation.Supported),
            LayerNormEps = json.GetDouble("layer_norm_eps", 1e-5),
            BosTokenId = json.GetInt("bos_token_id", 49406),
            EosTokenId = json.GetInt("eos_token_id", 49407),
            PadTokenId = json.GetInt("pad_token_id", 1),
            ProjectionDim = json.GetInt("projection_dim", 512),
        };
        config.Validate(json.Source);
        return config;
    }

    /// <summary>Reads a <c>config.json</c> file.</summary>
    public static ClipTextConfig Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>The config as transformers writes it for <c>CLIPTextModel</c>.</summary>
    public JsonObject ToJson() => new()
    {
        ["architectures"] = new JsonArray("CLIPTextModel"),
        ["model_type"] = "clip_text_model",
        ["vocab_size"] = VocabSize,
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["num_hidden_layers"] = NumHiddenLayers,
        ["num_attention_heads"] = NumAttentionHeads,
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["hidden_act"] = HiddenAct,
        ["layer_norm_eps"] = LayerNormEps,
        ["bos_token_id"] = BosTokenId,
        ["eos_token_id"] = EosTokenId,
        ["pad_token_id"] = PadTokenId,
        ["projection_dim"] = ProjectionDim,
        ["attention_dropout"] = 0.0,
        ["initializer_factor"] = 1.0,
        ["initializer_range"] = 0.02,
    };

    /// <summary>Checks sizes and the activation; <paramref name="source"/> names the config in the message.</summary>
    public void Validate(string source = "text encoder config")
    {
        ClipConfigChecks.Positive(source, ("vocab_size", VocabSize), ("hidden_size", HiddenSize),
            ("intermediate_size", IntermediateSize), ("num_hidden_layers", NumHiddenLayers),
            ("num_attention_heads", NumAttentionHeads), ("max_position_embeddings", MaxPositionEmbeddings));
        ClipConfigChecks.HeadsDivide(source, HiddenSize, NumAttentionHeads);
        ClipConfigChecks.Activation(source, HiddenAct);
        if (EosTokenId < 0 || EosTokenId >= VocabSize)
        {
            throw new ConfigException($"{source}: field 'eos_token_id' = {EosTokenId} is outside the vocabulary (vocab_size {VocabSize})");
        }
    }
}
