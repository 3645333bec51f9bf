using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Text;

/// <summary>
/// The fields of a transformers <c>BertConfig</c> that the encoder uses (<c>config.json</c> of a
/// <c>bert</c> model: BERT, MiniLM, all-MiniLM-L6-v2 and other WordPiece BERT-family encoders).
/// </summary>
internal sealed class BertConfig
{
    /// <summary><c>vocab_size</c>.</summary>
    public int VocabSize { get; init; } = 30522;

    /// <summary><c>hidden_size</c>.</summary>
    public int HiddenSize { get; init; } = 768;

    /// <summary><c>num_hidden_layers</c>.</summary>
    public int NumHiddenLayers { get; init; } = 12;

    /// <summary><c>num_attention_heads</c>.</summary>
    public int NumAttentionHeads { get; init; } = 12;

    /// <summary><c>intermediate_size</c>.</summary>
    public int IntermediateSize { get; init; } = 3072;

    /// <summary><c>max_position_embeddings</c> (also the longest token sequence encoded).</summary>
    public int MaxPositionEmbeddings { get; init; } = 512;

    /// <summary><c>type_vocab_size</c>.</summary>
    public int TypeVocabSize { get; init; } = 2;

    /// <summary><c>layer_norm_eps</c>.</summary>
    public double LayerNormEps { get; init; } = 1e-12;

    /// <summary><c>hidden_act</c>: <c>gelu</c> (exact) or <c>relu</c>.</summary>
    public string HiddenAct { get; init; } = "gelu";

    /// <summary><c>pad_token_id</c>.</summary>
    public int PadTokenId { get; init; }

    /// <summary>The all-MiniLM-L6-v2 configuration (6 layers, width 384, 12 heads).</summary>
    public static BertConfig MiniLmL6 { get; } = new()
    {
        HiddenSize = 384,
        NumHiddenLayers = 6,
        NumAttentionHeads = 12,
        IntermediateSize = 1536,
    };

    /// <summary>Reads a <c>config.json</c>; anything unsupported is a <see cref="ConfigException"/> naming the field.</summary>
    public static BertConfig FromJson(JsonConfig json)
    {
        var modelType = json.GetString("model_type", "bert");
        if (modelType != "bert")
        {
            throw new ConfigException($"{json.Source}: field 'model_type' = \"{modelType}\" is not supported (expected \"bert\": a WordPiece BERT-family encoder)");
        }
        json.RequireUnset("position_embedding_type", "only absolute position embeddings are implemented", "absolute");
        var config = new BertConfig
        {
            VocabSize = json.GetInt("vocab_size", 30522),
            HiddenSize = json.GetInt("hidden_size", 768),
            NumHiddenLayers = json.GetInt("num_hidden_layers", 12),
            NumAttentionHeads = json.GetInt("num_attention_heads", 12),
            IntermediateSize = json.GetInt("intermediate_size", 3072),
            MaxPositionEmbeddings = json.GetInt("max_position_embeddings", 512),
            TypeVocabSize = json.GetInt("type_vocab_size", 2),
            LayerNormEps = json.GetDouble("layer_norm_eps", 1e-12),
            HiddenAct = json.GetChoice("hidden_act", "gelu", "gelu", "relu"),
            PadTokenId = json.GetInt("pad_token_id", 0),
        };
        config.Validate(json.Source);
        return config;
    }

    /// <summary>Reads <paramref name="path"/> (a <c>config.json</c>).</summary>
    public static BertConfig Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>The config as transformers writes it.</summary>
    public JsonObject ToJson() => new()
    {
        ["model_type"] = "bert",
        ["architectures"] = new JsonArray("BertModel"),
        ["vocab_size"] = VocabSize,
        ["hidden_size"] = HiddenSize,
        ["num_hidden_layers"] = NumHiddenLayers,
        ["num_attention_heads"] = NumAttentionHeads,
        ["intermediate_size"] = IntermediateSize,
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["type_vocab_size"] = TypeVocabSize,
        ["layer_norm_eps"] = LayerNormEps,
        ["hidden_act"] = HiddenAct,
        ["pad_token_id"] = PadTokenId,
        ["position_embedding_type"] = "absolute",
    };

    /// <summary>Checks sizes are positive and the width divides into heads.</summary>
    public void Validate(string source = "BERT config")
    {
        void Positive(string name, int v)
        {
            if (v <= 0) throw new ConfigException($"{source}: field '{name}' must be positive, got {v}");
        }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("intermediate_size", IntermediateSize);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        Positive("type_vocab_size", TypeVocabSize);
        if (HiddenSize % NumAttentionHeads != 0)
        {
            throw new ConfigException($"{source}: hidden_size = {HiddenSize} is not a multiple of num_attention_heads = {NumAttentionHeads}");
        }
    }
}
