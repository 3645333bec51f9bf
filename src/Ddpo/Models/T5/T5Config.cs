using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Models.T5;

/// <summary>
/// transformers' <c>T5Config</c> as far as the encoder reads it (T5 v1.1, the text encoder of SD3 and FLUX), read
/// strictly: the keys that shape the encoder are typed and validated; transformers' generic and decoder-only keys are
/// listed and ignored; any other key is a <see cref="ConfigException"/> naming the file and the key. Defaults are
/// transformers'.
/// </summary>
internal sealed class T5Config
{
    /// <summary>Supported <c>feed_forward_proj</c> values: T5 v1.1's gated tanh-GELU and original T5's ReLU.</summary>
    public static readonly string[] FeedForwardKinds = ["gated-gelu", "relu"];

    /// <summary>Number of token ids (<c>vocab_size</c>).</summary>
    public int VocabSize { get; init; } = 32128;

    /// <summary>Model width (<c>d_model</c>).</summary>
    public int DModel { get; init; } = 512;

    /// <summary>Width of one attention head (<c>d_kv</c>).</summary>
    public int DKv { get; init; } = 64;

    /// <summary>Width of the feed-forward layer (<c>d_ff</c>).</summary>
    public int DFf { get; init; } = 2048;

    /// <summary>Number of encoder blocks (<c>num_layers</c>).</summary>
    public int NumLayers { get; init; } = 6;

    /// <summary>Decoder blocks (<c>num_decoder_layers</c>; informational, the encoder has none).</summary>
    public int? NumDecoderLayers { get; init; }

    /// <summary>Number of attention heads (<c>num_heads</c>).</summary>
    public int NumHeads { get; init; } = 8;

    /// <summary>Relative-position buckets (<c>relative_attention_num_buckets</c>; half per direction in the encoder).</summary>
    public int RelativeAttentionNumBuckets { get; init; } = 32;

    /// <summary>Distance from which all positions share the last bucket (<c>relative_attention_max_distance</c>).</summary>
    public int RelativeAttentionMaxDistance { get; init; } = 128;

    /// <summary>Epsilon of the RMS norms (<c>layer_norm_epsilon</c>).</summary>
    public double LayerNormEpsilon { get; init; } = 1e-6;

    /// <summary>Scale of the random initialisation (<c>initializer_factor</c>).</summary>
    public double InitializerFactor { get; init; } = 1.0;

    /// <summary>Dropout (<c>dropout_rate</c>; recorded, not applied: the encoder is used frozen, in eval mode).</summary>
    public double DropoutRate { get; init; } = 0.1;

    /// <summary>The feed-forward kind (<c>feed_forward_proj</c>): <c>gated-gelu</c> or <c>relu</c>.</summary>
    public string FeedForwardProj { get; init; } = "relu";

    /// <summary>The feed-forward activation transformers derives (<c>dense_act_fn</c>: <c>gelu_new</c> or <c>relu</c>).</summary>
    public string DenseActFn => FeedForwardProj == "gated-gelu" ? "gelu_new" : "relu";

    /// <summary>Whether the feed-forward is gated (<c>is_gated_act</c>: two input projections <c>wi_0</c>, <c>wi_1</c>).</summary>
    public bool IsGatedAct => FeedForwardProj.StartsWith("gated-", StringComparison.Ordinal);

    /// <summary>Padding id (<c>pad_token_id</c>).</summary>
    public int PadTokenId { get; init; }

    /// <summary>End-of-sequence id (<c>eos_token_id</c>).</summary>
    public int EosTokenId { get; init; } = 1;

    /// <summary>Decoder start id (<c>decoder_start_token_id</c>; written back for transformers, unused).</summary>
    public int DecoderStartTokenId { get; init; }

    // Keys that shape the encoder (read below).
    private static readonly string[] Keys =
    [
        "vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
        "relative_attention_num_buckets", "relative_attention_max_distance", "layer_norm_epsilon", "initializer_factor",
        "dropout_rate", "feed_forward_proj", "dense_act_fn", "is_gated_act", "pad_token_id", "eos_token_id",
        "decoder_start_token_id", "model_type",
    ];

    // transformers' PretrainedConfig bookkeeping, generation and decoder settings: none changes the encoder's output.
    private static readonly HashSet<string> Ignored =
    [
        "architectures", "transformers_version", "torch_dtype", "_name_or_path", "classifier_dropout", "use_cache",
        "is_encoder_decoder", "tie_word_embeddings", "return_dict", "output_hidden_states", "output_attentions",
        "torchscript", "use_bfloat16", "tf_legacy_loss", "pruned_heads", "chunk_size_feed_forward", "is_decoder",
        "cross_attention_hidden_size", "add_cross_attention", "tie_encoder_decoder", "max_length", "min_length",
        "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_k",
        "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
        "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
        "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
        "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "finetuning_task", "id2label",
        "label2id", "tokenizer_class", "prefix", "bos_token_id", "sep_token_id", "task_specific_params",
        "problem_type", "n_positions", "output_past", "gradient_checkpointing",
    ];

    /// <summary>Reads a <c>config.json</c> file.</summary>
    public static T5Config Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>Builds the config; unknown keys, unsupported or inconsistent values and wrong types name the key.</summary>
    public static T5Config FromJson(JsonConfig c)
    {
        foreach (var key in c.Root.Select(kv => kv.Key))
        {
            if (Keys.Contains(key) || Ignored.Contains(key)) continue;
            throw new ConfigException($"{c.Source}: unknown field '{key}' (a transformers T5 encoder config has: {string.Join(", ", Keys)}, and transformers' generic keys)");
        }
        var modelType = c.GetString("model_type", "t5");
        if (modelType != "t5")
        {
            throw new ConfigException($"{c.Source}: field 'model_type' = \"{modelType}\" but a T5 config (\"t5\") was expected");
        }
        var config = new T5Config
        {
            VocabSize = c.GetInt("vocab_size", 32128),
            DModel = c.GetInt("d_model", 512),
            DKv = c.GetInt("d_kv", 64),
            DFf = c.GetInt("d_ff", 2048),
            NumLayers = c.GetInt("num_layers", 6),
            NumDecoderLayers = c.GetIntOrNull("num_decoder_layers"),
            NumHeads = c.GetInt("num_heads", 8),
            RelativeAttentionNumBuckets = c.GetInt("relative_attention_num_buckets", 32),
            RelativeAttentionMaxDistance = c.GetInt("relative_attention_max_distance", 128),
            LayerNormEpsilon = c.GetDouble("layer_norm_epsilon", 1e-6),
            InitializerFactor = c.GetDouble("initializer_factor", 1.0),
            DropoutRate = c.GetDouble("dropout_rate", 0.1),
            FeedForwardProj = c.GetChoice("feed_forward_proj", "relu", FeedForwardKinds),
            PadTokenId = c.GetInt("pad_token_id", 0),
            EosTokenId = c.GetInt("eos_token_id", 1),
            DecoderStartTokenId = c.GetInt("decoder_start_token_id", 0),
        };
        // transformers derives these from feed_forward_proj; a file that disagrees describes another model.
        var act = c.GetStringOrNull("dense_act_fn");
        if (act is not null && act != config.DenseActFn)
        {
            throw new ConfigException($"{c.Source}: field 'dense_act_fn' = \"{act}\" does not match feed_forward_proj \"{config.FeedForwardProj}\" (expected \"{config.DenseActFn}\")");
        }
        if (c.Has("is_gated_act") && c.GetBool("is_gated_act", false) != config.IsGatedAct)
        {
            throw new ConfigException($"{c.Source}: field 'is_gated_act' = {c.Root["is_gated_act"]!.ToJsonString()} does not match feed_forward_proj \"{config.FeedForwardProj}\"");
        }
        config.Validate(c.Source);
        return config;
    }

    /// <summary>Checks sizes; <paramref name="source"/> names the config in the message.</summary>
    public void Validate(string source = "T5 config")
    {
        foreach (var (field, value) in new[]
        {
            ("vocab_size", VocabSize), ("d_model", DModel), ("d_kv", DKv), ("d_ff", DFf), ("num_layers", NumLayers),
            ("num_heads", NumHeads), ("relative_attention_num_buckets", RelativeAttentionNumBuckets),
            ("relative_attention_max_distance", RelativeAttentionMaxDistance),
        })
        {
            if (value <= 0) throw new ConfigException($"{source}: field '{field}' = {value}, expected a positive integer");
        }
        // Each direction needs an exact half and a log-spaced half: at least 4 buckets, max_distance beyond the exact range.
        if (RelativeAttentionNumBuckets < 4 || RelativeAttentionNumBuckets % 2 != 0)
        {
            throw new ConfigException($"{source}: field 'relative_attention_num_buckets' = {RelativeAttentionNumBuckets}, expected an even number ≥ 4");
        }
        if (RelativeAttentionMaxDistance <= RelativeAttentionNumBuckets / 4)
        {
            throw new ConfigException($"{source}: field 'relative_attention_max_distance' = {RelativeAttentionMaxDistance}, expected more than relative_attention_num_buckets / 4 = {RelativeAttentionNumBuckets / 4}");
        }
        if (!(LayerNormEpsilon >= 0)) throw new ConfigException($"{source}: field 'layer_norm_epsilon' = {LayerNormEpsilon}, expected a non-negative number");
        if (!FeedForwardKinds.Contains(FeedForwardProj))
        {
            throw new ConfigException($"{source}: field 'feed_forward_proj' = \"{FeedForwardProj}\" is not supported (expected one of: {string.Join(", ", FeedForwardKinds)})");
        }
    }

    /// <summary>The config as transformers writes it for <c>T5EncoderModel</c>.</summary>
    public JsonObject ToJson() => new()
    {
        ["architectures"] = new JsonArray("T5EncoderModel"),
        ["model_type"] = "t5",
        ["vocab_size"] = VocabSize,
        ["d_model"] = DModel,
        ["d_kv"] = DKv,
        ["d_ff"] = DFf,
        ["num_layers"] = NumLayers,
        ["num_decoder_layers"] = NumDecoderLayers ?? NumLayers,
        ["num_heads"] = NumHeads,
        ["relative_attention_num_buckets"] = RelativeAttentionNumBuckets,
        ["relative_attention_max_distance"] = RelativeAttentionMaxDistance,
        ["layer_norm_epsilon"] = LayerNormEpsilon,
        ["initializer_factor"] = InitializerFactor,
        ["dropout_rate"] = DropoutRate,
        ["feed_forward_proj"] = FeedForwardProj,
        ["dense_act_fn"] = DenseActFn,
        ["is_gated_act"] = IsGatedAct,
        ["pad_token_id"] = PadTokenId,
        ["eos_token_id"] = EosTokenId,
        ["decoder_start_token_id"] = DecoderStartTokenId,
        ["is_encoder_decoder"] = true,
        ["tie_word_embeddings"] = false,
        ["use_cache"] = false,
    };
}
