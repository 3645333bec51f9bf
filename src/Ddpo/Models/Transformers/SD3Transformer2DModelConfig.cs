using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Blocks;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Transformers;

/// <summary>
/// The configuration of a diffusers (0.31) <c>SD3Transformer2DModel</c>: SD3-medium, SD3.5-medium (dual attention in the
/// first blocks, RMS q/k norms) and SD3.5-large. Defaults are diffusers'. Read strictly: an unknown key, a wrong type or
/// an unsupported value is a <see cref="ConfigException"/> naming the file and the key.
/// </summary>
internal sealed class SD3Transformer2DModelConfig
{
    /// <summary>The diffusers class name written to and expected in <c>config.json</c>.</summary>
    public const string ClassName = "SD3Transformer2DModel";

    /// <summary>Every key diffusers 0.31 writes for this class (the metadata included).</summary>
    public static readonly IReadOnlySet<string> KnownKeys = new HashSet<string>(StringComparer.Ordinal)
    {
        "_class_name", "_diffusers_version", "_name_or_path", "sample_size", "patch_size", "in_channels", "num_layers",
        "attention_head_dim", "num_attention_heads", "joint_attention_dim", "caption_projection_dim",
        "pooled_projection_dim", "out_channels", "pos_embed_max_size", "dual_attention_layers", "qk_norm",
    };

    /// <summary>Latent size the model was trained at; sets the base of the sin-cos position grid.</summary>
    public int SampleSize { get; init; } = 128;

    /// <summary>Side of the square patches the latent is cut into.</summary>
    public int PatchSize { get; init; } = 2;

    /// <summary>Latent channels in.</summary>
    public int InChannels { get; init; } = 16;

    /// <summary>Number of joint transformer blocks (the last is context-pre-only).</summary>
    public int NumLayers { get; init; } = 18;

    /// <summary>Width of one attention head.</summary>
    public int AttentionHeadDim { get; init; } = 64;

    /// <summary>Number of attention heads; the model width is heads x head dim.</summary>
    public int NumAttentionHeads { get; init; } = 18;

    /// <summary>Width of the text embeddings (T5 + padded CLIP) fed to <c>context_embedder</c>.</summary>
    public int JointAttentionDim { get; init; } = 4096;

    /// <summary>Width <c>context_embedder</c> projects the text to (must equal the model width).</summary>
    public int CaptionProjectionDim { get; init; } = 1152;

    /// <summary>Width of the pooled CLIP embeddings.</summary>
    public int PooledProjectionDim { get; init; } = 2048;

    /// <summary>Latent channels out.</summary>
    public int OutChannels { get; init; } = 16;

    /// <summary>Side of the (persistent) position-embedding grid that is centre-cropped to the input's patch grid.</summary>
    public int PosEmbedMaxSize { get; init; } = 96;

    /// <summary>Blocks that also have the second, image-only attention <c>attn2</c> (SD3.5-medium: 0..12).</summary>
    public int[] DualAttentionLayers { get; init; } = [];

    /// <summary>Normalisation of the per-head queries and keys: null (SD3) or <c>rms_norm</c> (SD3.5).</summary>
    public string? QkNorm { get; init; }

    /// <summary>The model width (heads x head dim).</summary>
    public int InnerDim => NumAttentionHeads * AttentionHeadDim;

    /// <summary>stabilityai/stable-diffusion-3-medium-diffusers (transformer).</summary>
    public static SD3Transformer2DModelConfig Sd3Medium() => new()
    {
        SampleSize = 128, PatchSize = 2, InChannels = 16, NumLayers = 24, AttentionHeadDim = 64, NumAttentionHeads = 24,
        JointAttentionDim = 4096, CaptionProjectionDim = 1536, PooledProjectionDim = 2048, OutChannels = 16, PosEmbedMaxSize = 192,
    };

    /// <summary>stabilityai/stable-diffusion-3.5-medium (transformer): dual attention in blocks 0..12, RMS q/k norms.</summary>
    public static SD3Transformer2DModelConfig Sd35Medium() => new()
    {
        SampleSize = 128, PatchSize = 2, InChannels = 16, NumLayers = 24, AttentionHeadDim = 64, NumAttentionHeads = 24,
        JointAttentionDim = 4096, CaptionProjectionDim = 1536, PooledProjectionDim = 2048, OutChannels = 16, PosEmbedMaxSize = 384,
        DualAttentionLayers = Enumerable.Range(0, 13).ToArray(), QkNorm = "rms_norm",
    };

    /// <summary>stabilityai/stable-diffusion-3.5-large (transformer): RMS q/k norms.</summary>
    public static SD3Transformer2DModelConfig Sd35Large() => new()
    {
        SampleSize = 128, PatchSize = 2, InChannels = 16, NumLayers = 38, AttentionHeadDim = 64, NumAttentionHeads = 38,
        JointAttentionDim = 4096, CaptionProjectionDim = 2432, PooledProjectionDim = 2048, OutChannels = 16, PosEmbedMaxSize = 192,
        QkNorm = "rms_norm",
    };

    /// <summary>Reads a <c>config.json</c> file (see <see cref="FromJson"/>).</summary>
    public static SD3Transformer2DModelConfig Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>Builds the config from diffusers JSON; unknown keys, wrong types and unsupported values name the key.</summary>
    public static SD3Transformer2DModelConfig FromJson(JsonConfig json)
    {
        ArgumentNullException.ThrowIfNull(json);
        foreach (var key in json.Root.Select(kv => kv.Key).Where(k => !KnownKeys.Contains(k)))
        {
            throw new ConfigException($"{json.Source}: unknown field '{key}' for {ClassName} (diffusers 0.31 has: {string.Join(", ", KnownKeys.Order(StringComparer.Ordinal))})");
        }
        ConfigJson.RequireClass(json, ClassName);
        // Metadata is only type-checked.
        json.GetStringOrNull("_diffusers_version");
        json.GetStringOrNull("_name_or_path");
        var d = new SD3Transformer2DModelConfig();
        var qk = json.GetStringOrNull("qk_norm");
        if (qk is not null && qk != "rms_norm")
        {
            throw new ConfigException($"{json.Source}: field 'qk_norm' = \"{qk}\" is not supported (expected null or rms_norm, as SD3/SD3.5)");
        }
        var c = new SD3Transformer2DModelConfig
        {
            SampleSize = json.GetInt("sample_size", d.SampleSize),
            PatchSize = json.GetInt("patch_size", d.PatchSize),
            InChannels = json.GetInt("in_channels", d.InChannels),
            NumLayers = json.GetInt("num_layers", d.NumLayers),
            AttentionHeadDim = json.GetInt("attention_head_dim", d.AttentionHeadDim),
            NumAttentionHeads = json.GetInt("num_attention_heads", d.NumAttentionHeads),
            JointAttentionDim = json.GetInt("joint_attention_dim", d.JointAttentionDim),
            CaptionProjectionDim = json.GetInt("caption_projection_dim", d.CaptionProjectionDim),
            PooledProjectionDim = json.GetInt("pooled_projection_dim", d.PooledProjectionDim),
            // diffusers: out_channels null means in_channels.
            OutChannels = json.GetInt("out_channels", json.GetInt("in_channels", d.InChannels)),
            PosEmbedMaxSize = json.GetInt("pos_embed_max_size", d.PosEmbedMaxSize),
            DualAttentionLayers = json.GetIntArray("dual_attention_layers", d.DualAttentionLayers),
            QkNorm = qk,
        };
        c.Validate(json.Source);
        return c;
    }

    /// <summary>Checks the values are consistent and supported; throws <see cref="ConfigException"/> naming the field.</summary>
    public void Validate(string source = "SD3Transformer2DModelConfig")
    {
        ConfigException Bad(string field, string message) => new($"{source}: field '{field}' {message}");
        foreach (var (field, value) in new[]
        {
            ("sample_size", SampleSize), ("patch_size", PatchSize), ("in_channels", InChannels), ("num_layers", NumLayers),
            ("attention_head_dim", AttentionHeadDim), ("num_attention_heads", NumAttentionHeads),
            ("joint_attention_dim", JointAttentionDim), ("caption_projection_dim", CaptionProjectionDim),
            ("pooled_projection_dim", PooledProjectionDim), ("out_channels", OutChannels), ("pos_embed_max_size", PosEmbedMaxSize),
        })
        {
            if (value <= 0) throw Bad(field, $"= {value}, expected a positive integer");
        }
        // The blocks add the projected text to attention outputs of the model width.
        if (CaptionProjectionDim != InnerDim)
        {
            throw Bad("caption_projection_dim", $"= {CaptionProjectionDim} must equal num_attention_heads x attention_head_dim = {InnerDim}");
        }
        // The sin-cos embedding splits the width into four equal parts (sin/cos of the two grid coordinates).
        if (InnerDim % 4 != 0) throw Bad("attention_head_dim", $"x num_attention_heads = {InnerDim} must be a multiple of 4");
        if (QkNorm is not null && QkNorm != "rms_norm") throw Bad("qk_norm", $"= \"{QkNorm}\" is not supported (expected null or rms_norm)");
        foreach (var i in DualAttentionLayers.Where(i => i < 0 || i >= NumLayers))
        {
            throw Bad("dual_attention_layers", $"entry {i} is outside 0..{NumLayers - 1} (num_layers)");
        }
    }

    /// <summary>The config as diffusers 0.31 writes it (keys sorted when written by <see cref="ConfigJson.Write"/>).</summary>
    public JsonObject ToJson() => new()
    {
        ["_class_name"] = ClassName,
        ["_diffusers_version"] = "0.31.0",
        ["attention_head_dim"] = AttentionHeadDim,
        ["caption_projection_dim"] = CaptionProjectionDim,
        ["dual_attention_layers"] = ConfigJson.Ints(DualAttentionLayers),
        ["in_channels"] = InChannels,
        ["joint_attention_dim"] = JointAttentionDim,
        ["num_attention_heads"] = NumAttentionHeads,
        ["num_layers"] = NumLayers,
        ["out_channels"] = OutChannels,
        ["patch_size"] = PatchSize,
        ["pooled_projection_dim"] = PooledProjectionDim,
        ["pos_embed_max_size"] = PosEmbedMaxSize,
        ["qk_norm"] = QkNorm,
        ["sample_size"] = SampleSize,
    };
}
