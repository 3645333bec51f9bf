using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Blocks;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Transformers;

/// <summary>
/// The configuration of a diffusers (0.31) <c>FluxTransformer2DModel</c> (FLUX.1-dev / FLUX.1-schnell). Defaults are
/// diffusers'. Read strictly: an unknown key, a wrong type or an unsupported value is a <see cref="ConfigException"/>
/// naming the file and the key. <c>out_channels</c> (later diffusers; null or absent = <c>in_channels</c>) is accepted.
/// </summary>
internal sealed class FluxTransformer2DModelConfig
{
    /// <summary>The diffusers class name written to and expected in <c>config.json</c>.</summary>
    public const string ClassName = "FluxTransformer2DModel";

    /// <summary>Every key diffusers writes for this class (the metadata included).</summary>
    public static readonly IReadOnlySet<string> KnownKeys = new HashSet<string>(StringComparer.Ordinal)
    {
        "_class_name", "_diffusers_version", "_name_or_path", "patch_size", "in_channels", "out_channels", "num_layers",
        "num_single_layers", "attention_head_dim", "num_attention_heads", "joint_attention_dim", "pooled_projection_dim",
        "guidance_embeds", "axes_dims_rope",
    };

    /// <summary>Patch size; FLUX packs 2x2 latent patches outside the model, so this is 1 and only sizes <c>proj_out</c>.</summary>
    public int PatchSize { get; init; } = 1;

    /// <summary>Channels of one packed token (16 latent channels x 2 x 2).</summary>
    public int InChannels { get; init; } = 64;

    /// <summary>Channels out per token (diffusers: null means <c>in_channels</c>).</summary>
    public int OutChannels { get; init; } = 64;

    /// <summary>Number of double-stream (MMDiT) blocks.</summary>
    public int NumLayers { get; init; } = 19;

    /// <summary>Number of single-stream blocks.</summary>
    public int NumSingleLayers { get; init; } = 38;

    /// <summary>Width of one attention head (must equal the sum of <see cref="AxesDimsRope"/>).</summary>
    public int AttentionHeadDim { get; init; } = 128;

    /// <summary>Number of attention heads; the model width is heads x head dim.</summary>
    public int NumAttentionHeads { get; init; } = 24;

    /// <summary>Width of the T5 text embeddings fed to <c>context_embedder</c>.</summary>
    public int JointAttentionDim { get; init; } = 4096;

    /// <summary>Width of the pooled CLIP embedding.</summary>
    public int PooledProjectionDim { get; init; } = 768;

    /// <summary>Whether the model has the distilled-guidance embedder (FLUX.1-dev: true, schnell: false).</summary>
    public bool GuidanceEmbeds { get; init; }

    /// <summary>Rotary widths of the three position axes (each even; they sum to the head dim).</summary>
    public int[] AxesDimsRope { get; init; } = [16, 56, 56];

    /// <summary>The model width (heads x head dim).</summary>
    public int InnerDim => NumAttentionHeads * AttentionHeadDim;

    /// <summary>black-forest-labs/FLUX.1-dev (transformer): guidance embedding.</summary>
    public static FluxTransformer2DModelConfig FluxDev() => new() { GuidanceEmbeds = true };

    /// <summary>black-forest-labs/FLUX.1-schnell (transformer): no guidance embedding.</summary>
    public static FluxTransformer2DModelConfig FluxSchnell() => new() { GuidanceEmbeds = false };

    /// <summary>Reads a <c>config.json</c> file (see <see cref="FromJson"/>).</summary>
    public static FluxTransformer2DModelConfig Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>Builds the config from diffusers JSON; unknown keys, wrong types and unsupported values name the key.</summary>
    public static FluxTransformer2DModelConfig FromJson(JsonConfig json)
    {
        ArgumentNullException.ThrowIfNull(json);
        foreach (var key in json.Root.Select(kv => kv.Key).Where(k => !KnownKeys.Contains(k)))
        {
            throw new ConfigException($"{json.Source}: unknown field '{key}' for {ClassName} (diffusers has: {string.Join(", ", KnownKeys.Order(StringComparer.Ordinal))})");
        }
        ConfigJson.RequireClass(json, ClassName);
        // Metadata is only type-checked.
        json.GetStringOrNull("_diffusers_version");
        json.GetStringOrNull("_name_or_path");
        var d = new FluxTransformer2DModelConfig();
        int inChannels = json.GetInt("in_channels", d.InChannels);
        var c = new FluxTransformer2DModelConfig
        {
            PatchSize = json.GetInt("patch_size", d.PatchSize),
            InChannels = inChannels,
            // GetInt returns the default for a JSON null too: null means in_channels, as diffusers.
            OutChannels = json.GetInt("out_channels", inChannels),
            NumLayers = json.GetInt("num_layers", d.NumLayers),
            NumSingleLayers = json.GetInt("num_single_layers", d.NumSingleLayers),
            AttentionHeadDim = json.GetInt("attention_head_dim", d.AttentionHeadDim),
            NumAttentionHeads = json.GetInt("num_attention_heads", d.NumAttentionHeads),
            JointAttentionDim = json.GetInt("joint_attention_dim", d.JointAttentionDim),
            PooledProjectionDim = json.GetInt("pooled_projection_dim", d.PooledProjectionDim),
            GuidanceEmbeds = json.GetBool("guidance_embeds", d.GuidanceEmbeds),
            AxesDimsRope = json.GetIntArray("axes_dims_rope", d.AxesDimsRope),
        };
        c.Validate(json.Source);
        return c;
    }

    /// <summary>Checks the values are consistent and supported; throws <see cref="ConfigException"/> naming the field.</summary>
    public void Validate(string source = "FluxTransformer2DModelConfig")
    {
        ConfigException Bad(string field, string message) => new($"{source}: field '{field}' {message}");
        foreach (var (field, value) in new[]
        {
            ("patch_size", PatchSize), ("in_channels", InChannels), ("out_channels", OutChannels),
            ("attention_head_dim", AttentionHeadDim), ("num_attention_heads", NumAttentionHeads),
            ("joint_attention_dim", JointAttentionDim), ("pooled_projection_dim", PooledProjectionDim),
        })
        {
            if (value <= 0) throw Bad(field, $"= {value}, expected a positive integer");
        }
        if (NumLayers < 0) throw Bad("num_layers", $"= {NumLayers}, expected a non-negative integer");
        if (NumSingleLayers < 0) throw Bad("num_single_layers", $"= {NumSingleLayers}, expected a non-negative integer");
        if (AxesDimsRope is null || AxesDimsRope.Length == 0) throw Bad("axes_dims_rope", "must list the rotary width of each position axis");
        // RoPE rotates pairs of channels, and the three axes together cover one head.
        if (AxesDimsRope.Any(a => a <= 0 || a % 2 != 0)) throw Bad("axes_dims_rope", $"= [{string.Join(", ", AxesDimsRope)}] must be positive even integers");
        if (AxesDimsRope.Sum() != AttentionHeadDim)
        {
            throw Bad("axes_dims_rope", $"= [{string.Join(", ", AxesDimsRope)}] must sum to attention_head_dim = {AttentionHeadDim}");
        }
    }

    /// <summary>
    /// The config as diffusers 0.31 writes it (keys sorted when written by <see cref="ConfigJson.Write"/>);
    /// <c>out_channels</c> only when it differs from <c>in_channels</c> (0.31 has no such key).
    /// </summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["_class_name"] = ClassName,
            ["_diffusers_version"] = "0.31.0",
            ["attention_head_dim"] = AttentionHeadDim,
            ["axes_dims_rope"] = ConfigJson.Ints(AxesDimsRope),
            ["guidance_embeds"] = GuidanceEmbeds,
            ["in_channels"] = InChannels,
            ["joint_attention_dim"] = JointAttentionDim,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_layers"] = NumLayers,
            ["num_single_layers"] = NumSingleLayers,
            ["patch_size"] = PatchSize,
            ["pooled_projection_dim"] = PooledProjectionDim,
        };
        if (OutChannels != InChannels) o["out_channels"] = OutChannels;
        return o;
    }
}
