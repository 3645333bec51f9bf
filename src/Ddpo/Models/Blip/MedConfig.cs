using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Blip;

/// <summary>
/// BLIP's <c>med_config.json</c> (the <c>BertConfig</c> of its "MED" text encoder, <c>models/med.py</c>). Defaults are
/// ImageReward's file (THUDM/ImageReward <c>train/src/config/med_config.json</c> at c1392c6: BERT-base, vocabulary
/// 30522 + <c>[DEC]</c> + <c>[ENC]</c>). Unknown fields are refused, so a file for a different architecture is not
/// silently half-read.
/// </summary>
internal sealed class MedConfig
{
    private static readonly string[] Known =
    [
        "architectures", "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
        "initializer_range", "intermediate_size", "layer_norm_eps", "max_position_embeddings", "model_type",
        "num_attention_heads", "num_hidden_layers", "pad_token_id", "type_vocab_size", "vocab_size", "encoder_width",
        "add_cross_attention",
    ];

    /// <summary><c>vocab_size</c> (the tokenizer's size after BLIP's two added tokens).</summary>
    public int VocabSize { get; init; } = 30524;

    /// <summary><c>hidden_size</c>.</summary>
    public int HiddenSize { get; init; } = 768;

    /// <summary><c>num_hidden_layers</c>.</summary>
    public int NumHiddenLayers { get; init; } = 12;

    /// <summary><c>num_attention_heads</c>.</summary>
    public int NumAttentionHeads { get; init; } = 12;

    /// <summary><c>intermediate_size</c>.</summary>
    public int IntermediateSize { get; init; } = 3072;

    /// <summary><c>max_position_embeddings</c> (also the length of the <c>position_ids</c> buffer).</summary>
    public int MaxPositionEmbeddings { get; init; } = 512;

    /// <summary><c>layer_norm_eps</c>.</summary>
    public double LayerNormEps { get; init; } = 1e-12;

    /// <summary>
    /// Width of the image tokens the cross-attention reads (<c>encoder_width</c>). BLIP overwrites the file's value
    /// with the ViT's width (<c>BLIP_Pretrain.__init__</c>: <c>encoder_config.encoder_width = vision_width</c>), so the
    /// model builder passes the ViT width, not this.
    /// </summary>
    public int EncoderWidth { get; init; } = 768;

    /// <summary>The real file's values.</summary>
    public static MedConfig BertBase { get; } = new();

    /// <summary>Reads <c>med_config.json</c>; unknown, wrong-typed or unsupported fields are a <see cref="ConfigException"/> naming the file and field.</summary>
    public static MedConfig FromJson(JsonConfig json)
    {
        foreach (var key in json.Root.Select(kv => kv.Key))
        {
            if (!Known.Contains(key))
            {
                throw new ConfigException($"{json.Source}: unknown field '{key}' (a BLIP med_config.json has: {string.Join(", ", Known)})");
            }
        }
        json.GetChoice("model_type", "bert", "bert");
        json.GetChoice("hidden_act", "gelu", "gelu");
        json.GetStringArray("architectures", []);
        json.GetDouble("attention_probs_dropout_prob", 0.1);
        json.GetDouble("hidden_dropout_prob", 0.1);
        json.GetDouble("initializer_range", 0.02);
        json.GetInt("pad_token_id", 0);
        // BLIP's MED has no token-type embeddings whatever this says; read for its type only.
        json.GetInt("type_vocab_size", 2);
        if (!json.GetBool("add_cross_attention", true))
        {
            throw new ConfigException($"{json.Source}: field 'add_cross_attention' = false is not supported (ImageReward's text encoder cross-attends to the image)");
        }
        var config = new MedConfig
        {
            VocabSize = json.GetInt("vocab_size", 30524),
            HiddenSize = json.GetInt("hidden_size", 768),
            NumHiddenLayers = json.GetInt("num_hidden_layers", 12),
            NumAttentionHeads = json.GetInt("num_attention_heads", 12),
            IntermediateSize = json.GetInt("intermediate_size", 3072),
            MaxPositionEmbeddings = json.GetInt("max_position_embeddings", 512),
            LayerNormEps = json.GetDouble("layer_norm_eps", 1e-12),
            EncoderWidth = json.GetInt("encoder_width", 768),
        };
        config.Validate(json.Source);
        return config;
    }

    /// <summary>Reads a <c>med_config.json</c> file.</summary>
    public static MedConfig Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>Checks sizes are positive and the width divides into heads.</summary>
    public void Validate(string source = "MED config")
    {
        foreach (var (name, v) in new[]
                 {
                     ("vocab_size", VocabSize), ("hidden_size", HiddenSize), ("num_hidden_layers", NumHiddenLayers),
                     ("num_attention_heads", NumAttentionHeads), ("intermediate_size", IntermediateSize),
                     ("max_position_embeddings", MaxPositionEmbeddings), ("encoder_width", EncoderWidth),
                 })
        {
            if (v <= 0) throw new ConfigException($"{source}: field '{name}' = {v}, expected a positive integer");
        }
        if (HiddenSize % NumAttentionHeads != 0)
        {
            throw new ConfigException($"{source}: field 'hidden_size' = {HiddenSize} is not divisible by 'num_attention_heads' = {NumAttentionHeads}");
        }
    }
}
