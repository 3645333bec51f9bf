using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Blocks;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Unet;

/// <summary>
/// The configuration of a diffusers <c>UNet2DConditionModel</c> (Stable Diffusion 1.x / 2.x and SDXL topologies).
/// Defaults are diffusers'. Per-block values are stored expanded to one entry per down block.
/// Note diffusers' naming quirk: when <see cref="NumAttentionHeads"/> is unset, <see cref="AttentionHeadDim"/>
/// is the number of attention HEADS per block (SD 1.x: 8 heads; SD 2.x: [5, 10, 20, 20] heads).
/// </summary>
internal sealed class UNet2DConditionConfig
{
    /// <summary>The diffusers class name written to and expected in <c>config.json</c>.</summary>
    public const string ClassName = "UNet2DConditionModel";

    /// <summary>Supported down-block types.</summary>
    public static readonly string[] DownBlockKinds = ["CrossAttnDownBlock2D", "DownBlock2D"];

    /// <summary>Supported up-block types.</summary>
    public static readonly string[] UpBlockKinds = ["CrossAttnUpBlock2D", "UpBlock2D"];

    /// <summary>Latent height/width the model was trained at (informational), or null.</summary>
    public int? SampleSize { get; set; }

    /// <summary>Input channels (4 for latent diffusion, 3 for a pixel-space model).</summary>
    public int InChannels { get; set; } = 4;

    /// <summary>Output channels.</summary>
    public int OutChannels { get; set; } = 4;

    /// <summary>Whether the input is mapped by <c>2x - 1</c> first.</summary>
    public bool CenterInputSample { get; set; }

    /// <summary>Whether the sinusoidal timestep embedding is ordered [cos, sin].</summary>
    public bool FlipSinToCos { get; set; } = true;

    /// <summary>The frequency shift of the sinusoidal timestep embedding.</summary>
    public int FreqShift { get; set; }

    /// <summary>Down-block types (<c>CrossAttnDownBlock2D</c> or <c>DownBlock2D</c>).</summary>
    public string[] DownBlockTypes { get; set; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];

    /// <summary>The mid-block type (only <c>UNetMidBlock2DCrossAttn</c>).</summary>
    public string MidBlockType { get; set; } = "UNetMidBlock2DCrossAttn";

    /// <summary>Up-block types (<c>CrossAttnUpBlock2D</c> or <c>UpBlock2D</c>).</summary>
    public string[] UpBlockTypes { get; set; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];

    /// <summary>Output channels of each down block.</summary>
    public int[] BlockOutChannels { get; set; } = [320, 640, 1280, 1280];

    /// <summary>ResNet layers per down block (up blocks have one more).</summary>
    public int[] LayersPerBlock { get; set; } = [2, 2, 2, 2];

    /// <summary>Padding of the down-sampling convolutions.</summary>
    public int DownsamplePadding { get; set; } = 1;

    /// <summary>Output scale of the mid block's ResNets.</summary>
    public double MidBlockScaleFactor { get; set; } = 1.0;

    /// <summary>Dropout probability (ResNets, attention output, feed-forward).</summary>
    public double Dropout { get; set; }

    /// <summary>Activation (only <c>silu</c>).</summary>
    public string ActFn { get; set; } = "silu";

    /// <summary>Groups of every GroupNorm.</summary>
    public int NormNumGroups { get; set; } = 32;

    /// <summary>Epsilon of the ResNet and output GroupNorms.</summary>
    public double NormEps { get; set; } = 1e-5;

    /// <summary>Width of the text embeddings attended to, per down block.</summary>
    public int[] CrossAttentionDim { get; set; } = [1280, 1280, 1280, 1280];

    /// <summary>Transformer blocks per attention layer, per down block.</summary>
    public int[] TransformerLayersPerBlock { get; set; } = [1, 1, 1, 1];

    /// <summary>diffusers' <c>attention_head_dim</c>, per down block (the head COUNT unless <see cref="NumAttentionHeads"/> is set).</summary>
    public int[] AttentionHeadDim { get; set; } = [8, 8, 8, 8];

    /// <summary>diffusers' <c>num_attention_heads</c>, per down block, or null (then <see cref="AttentionHeadDim"/> is used).</summary>
    public int[]? NumAttentionHeads { get; set; }

    /// <summary>Whether the transformers' <c>proj_in</c>/<c>proj_out</c> are Linear (SD 2.x) instead of 1x1 convolutions.</summary>
    public bool UseLinearProjection { get; set; }

    /// <summary>Whether attention is computed in float32 when the model runs in half precision (SD 2.1).</summary>
    public bool UpcastAttention { get; set; }

    /// <summary>Output scale of the down/up blocks' ResNets.</summary>
    public double ResnetOutScaleFactor { get; set; } = 1.0;

    /// <summary>Width of the time embedding, or null for <c>4 * BlockOutChannels[0]</c>.</summary>
    public int? TimeEmbeddingDim { get; set; }

    /// <summary>Kernel size of <c>conv_in</c>.</summary>
    public int ConvInKernel { get; set; } = 3;

    /// <summary>Kernel size of <c>conv_out</c>.</summary>
    public int ConvOutKernel { get; set; } = 3;

    /// <summary>diffusers' <c>addition_embed_type</c>: null, or <c>text_time</c> (SDXL: pooled text embeddings and size/crop ids added to the time embedding).</summary>
    public string? AdditionEmbedType { get; set; }

    /// <summary>Width of the sinusoidal embedding of each SDXL time id (<c>addition_time_embed_dim</c>; 256 for SDXL).</summary>
    public int? AdditionTimeEmbedDim { get; set; }

    /// <summary>Input width of <c>add_embedding</c>: the pooled text width + time ids x <see cref="AdditionTimeEmbedDim"/> (2816 for SDXL).</summary>
    public int? ProjectionClassEmbeddingsInputDim { get; set; }

    /// <summary>diffusers' <c>addition_embed_type_num_heads</c>: read and written back, unused (as in diffusers for <c>text_time</c>).</summary>
    public int AdditionEmbedTypeNumHeads { get; set; } = 64;

    /// <summary>Whether the model is SDXL's: <c>addition_embed_type = text_time</c>.</summary>
    public bool IsTextTime => AdditionEmbedType == TextTime;

    /// <summary>The <c>addition_embed_type</c> of SDXL.</summary>
    public const string TextTime = "text_time";

    /// <summary>Attention heads of each down block (diffusers: <c>num_attention_heads or attention_head_dim</c>).</summary>
    public int[] HeadsPerBlock => NumAttentionHeads ?? AttentionHeadDim;

    /// <summary>The time-embedding width actually used.</summary>
    public int TimeEmbedDim => TimeEmbeddingDim ?? BlockOutChannels[0] * 4;

    /// <summary>Stable Diffusion 1.4 / 1.5.</summary>
    public static UNet2DConditionConfig Sd14() => new()
    {
        SampleSize = 64,
        BlockOutChannels = [320, 640, 1280, 1280],
        LayersPerBlock = [2, 2, 2, 2],
        AttentionHeadDim = [8, 8, 8, 8],
        CrossAttentionDim = [768, 768, 768, 768],
    };

    /// <summary>Stable Diffusion 2.1 (768-v).</summary>
    public static UNet2DConditionConfig Sd21() => new()
    {
        SampleSize = 96,
        BlockOutChannels = [320, 640, 1280, 1280],
        LayersPerBlock = [2, 2, 2, 2],
        AttentionHeadDim = [5, 10, 20, 20],
        CrossAttentionDim = [1024, 1024, 1024, 1024],
        UseLinearProjection = true,
        UpcastAttention = true,
    };

    /// <summary>
    /// Stable Diffusion XL base 1.0's UNet (stabilityai/stable-diffusion-xl-base-1.0 <c>unet/config.json</c>): three levels,
    /// no attention at the top one, 1 / 2 / 10 transformer layers, 2048-wide text states and the text_time embedding.
    /// </summary>
    public static UNet2DConditionConfig SdxlBase() => new()
    {
        SampleSize = 128,
        DownBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        UpBlockTypes = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        BlockOutChannels = [320, 640, 1280],
        LayersPerBlock = [2, 2, 2],
        AttentionHeadDim = [5, 10, 20],
        CrossAttentionDim = [2048, 2048, 2048],
        TransformerLayersPerBlock = [1, 2, 10],
        UseLinearProjection = true,
        AdditionEmbedType = TextTime,
        AdditionTimeEmbedDim = 256,
        ProjectionClassEmbeddingsInputDim = 2816,
    };

    /// <summary>Reads a <c>config.json</c> file (see <see cref="FromJson"/>).</summary>
    public static UNet2DConditionConfig Load(string configJsonPath) => FromJson(JsonConfig.Load(configJsonPath));

    /// <summary>
    /// Builds the config from diffusers JSON. Fields that select features not implemented here
    /// (Kandinsky embeddings, class embeddings, other block types, ...) are a <see cref="ConfigException"/>
    /// naming the field.
    /// </summary>
    public static UNet2DConditionConfig FromJson(JsonConfig cfg)
    {
        ConfigJson.RequireClass(cfg, ClassName);
        const string sd = "only the Stable Diffusion 1.x/2.x and SDXL UNets are implemented";
        cfg.RequireUnset("class_embed_type", sd);
        cfg.RequireUnset("num_class_embeds", sd);
        cfg.RequireUnset("time_cond_proj_dim", sd);
        cfg.RequireUnset("encoder_hid_dim", sd);
        cfg.RequireUnset("encoder_hid_dim_type", sd);
        cfg.RequireUnset("time_embedding_act_fn", sd);
        cfg.RequireUnset("timestep_post_act", sd);
        cfg.RequireUnset("cross_attention_norm", sd);
        cfg.RequireUnset("reverse_transformer_layers_per_block", sd);
        cfg.RequireUnset("dual_cross_attention", sd, false);
        cfg.RequireUnset("resnet_skip_time_act", sd, false);
        cfg.RequireUnset("class_embeddings_concat", sd, false);
        cfg.RequireUnset("mid_block_only_cross_attention", sd, false);
        cfg.RequireUnset("resnet_time_scale_shift", sd, "default");
        cfg.RequireUnset("attention_type", sd, "default");
        cfg.RequireUnset("time_embedding_type", sd, "positional");
        ConfigJson.RequireFalseOrAllFalse(cfg, "only_cross_attention", sd);
        ConfigJson.RequireNotNull(cfg, "mid_block_type", "a UNet without mid block is not implemented");
        ConfigJson.RequireNotNull(cfg, "norm_num_groups", "a UNet without output GroupNorm is not implemented");

        var d = new UNet2DConditionConfig();
        var c = new UNet2DConditionConfig
        {
            SampleSize = cfg.GetIntOrNull("sample_size"),
            InChannels = cfg.GetInt("in_channels", d.InChannels),
            OutChannels = cfg.GetInt("out_channels", d.OutChannels),
            CenterInputSample = cfg.GetBool("center_input_sample", d.CenterInputSample),
            FlipSinToCos = cfg.GetBool("flip_sin_to_cos", d.FlipSinToCos),
            FreqShift = cfg.GetInt("freq_shift", d.FreqShift),
            DownBlockTypes = cfg.GetStringArray("down_block_types", d.DownBlockTypes),
            MidBlockType = cfg.GetChoice("mid_block_type", d.MidBlockType, "UNetMidBlock2DCrossAttn"),
            UpBlockTypes = cfg.GetStringArray("up_block_types", d.UpBlockTypes),
            BlockOutChannels = cfg.GetIntArray("block_out_channels", d.BlockOutChannels),
            DownsamplePadding = cfg.GetInt("downsample_padding", d.DownsamplePadding),
            MidBlockScaleFactor = cfg.GetDouble("mid_block_scale_factor", d.MidBlockScaleFactor),
            Dropout = cfg.GetDouble("dropout", d.Dropout),
            ActFn = cfg.GetChoice("act_fn", d.ActFn, "silu"),
            NormNumGroups = cfg.GetInt("norm_num_groups", d.NormNumGroups),
            NormEps = cfg.GetDouble("norm_eps", d.NormEps),
            UseLinearProjection = cfg.GetBool("use_linear_projection", d.UseLinearProjection),
            UpcastAttention = cfg.GetBool("upcast_attention", d.UpcastAttention),
            ResnetOutScaleFactor = cfg.GetDouble("resnet_out_scale_factor", d.ResnetOutScaleFactor),
            TimeEmbeddingDim = cfg.GetIntOrNull("time_embedding_dim"),
            ConvInKernel = cfg.GetInt("conv_in_kernel", d.ConvInKernel),
            ConvOutKernel = cfg.GetInt("conv_out_kernel", d.ConvOutKernel),
            AdditionEmbedType = cfg.Has("addition_embed_type") ? cfg.GetChoice("addition_embed_type", TextTime, TextTime) : null,
            AdditionTimeEmbedDim = cfg.GetIntOrNull("addition_time_embed_dim"),
            ProjectionClassEmbeddingsInputDim = cfg.GetIntOrNull("projection_class_embeddings_input_dim"),
            AdditionEmbedTypeNumHeads = cfg.GetInt("addition_embed_type_num_heads", d.AdditionEmbedTypeNumHeads),
        };
        int n = c.BlockOutChannels.Length;
        c.LayersPerBlock = cfg.GetIntOrIntArray("layers_per_block", n) ?? Enumerable.Repeat(2, n).ToArray();
        c.CrossAttentionDim = cfg.GetIntOrIntArray("cross_attention_dim", n) ?? Enumerable.Repeat(1280, n).ToArray();
        c.TransformerLayersPerBlock = cfg.GetIntOrIntArray("transformer_layers_per_block", n) ?? Enumerable.Repeat(1, n).ToArray();
        c.AttentionHeadDim = cfg.GetIntOrIntArray("attention_head_dim", n) ?? Enumerable.Repeat(8, n).ToArray();
        c.NumAttentionHeads = cfg.GetIntOrIntArray("num_attention_heads", n);
        c.Validate(cfg.Source);
        return c;
    }

    /// <summary>
    /// Checks the values are consistent and supported; throws <see cref="ConfigException"/> naming
    /// <paramref name="source"/> and the field.
    /// </summary>
    public void Validate(string source = "UNet2DConditionConfig")
    {
        ConfigException Bad(string field, string message) => new($"{source}: field '{field}' {message}");
        int n = BlockOutChannels.Length;
        if (n == 0) throw Bad("block_out_channels", "must list at least one block");
        if (DownBlockTypes.Length != n) throw Bad("down_block_types", $"has {DownBlockTypes.Length} entries but block_out_channels has {n}");
        if (UpBlockTypes.Length != n) throw Bad("up_block_types", $"has {UpBlockTypes.Length} entries but block_out_channels has {n}");
        foreach (var (field, values) in new[]
        {
            ("layers_per_block", LayersPerBlock), ("cross_attention_dim", CrossAttentionDim),
            ("transformer_layers_per_block", TransformerLayersPerBlock), ("attention_head_dim", AttentionHeadDim),
            ("num_attention_heads", NumAttentionHeads ?? AttentionHeadDim),
        })
        {
            if (values.Length != n) throw Bad(field, $"has {values.Length} entries but block_out_channels has {n}");
            if (values.Any(v => v <= 0)) throw Bad(field, $"must be positive, got [{string.Join(", ", values)}]");
        }
        foreach (var t in DownBlockTypes.Where(t => !DownBlockKinds.Contains(t)))
        {
            throw Bad("down_block_types", $"entry \"{t}\" is not supported (expected one of: {string.Join(", ", DownBlockKinds)})");
        }
        foreach (var t in UpBlockTypes.Where(t => !UpBlockKinds.Contains(t)))
        {
            throw Bad("up_block_types", $"entry \"{t}\" is not supported (expected one of: {string.Join(", ", UpBlockKinds)})");
        }
        if (MidBlockType != "UNetMidBlock2DCrossAttn") throw Bad("mid_block_type", $"\"{MidBlockType}\" is not supported (expected UNetMidBlock2DCrossAttn)");
        if (ActFn != "silu") throw Bad("act_fn", $"\"{ActFn}\" is not supported (expected silu)");
        if (InChannels <= 0 || OutChannels <= 0) throw Bad("in_channels/out_channels", "must be positive");
        if (NormNumGroups <= 0) throw Bad("norm_num_groups", "must be positive");
        if (ConvInKernel % 2 == 0 || ConvInKernel <= 0) throw Bad("conv_in_kernel", $"must be odd and positive, got {ConvInKernel}");
        if (ConvOutKernel % 2 == 0 || ConvOutKernel <= 0) throw Bad("conv_out_kernel", $"must be odd and positive, got {ConvOutKernel}");
        if (TimeEmbedDim <= 0) throw Bad("time_embedding_dim", "must be positive");
        if (IsTextTime)
        {
            if (AdditionTimeEmbedDim is not > 0) throw Bad("addition_time_embed_dim", "must be a positive integer when 'addition_embed_type' is \"text_time\" (SDXL)");
            if (ProjectionClassEmbeddingsInputDim is not > 0) throw Bad("projection_class_embeddings_input_dim", "must be a positive integer when 'addition_embed_type' is \"text_time\" (SDXL)");
        }
        else if (AdditionEmbedType is not null)
        {
            throw Bad("addition_embed_type", $"\"{AdditionEmbedType}\" is not supported (expected null or \"text_time\")");
        }
        var heads = HeadsPerBlock;
        for (int i = 0; i < n; i++)
        {
            int ch = BlockOutChannels[i];
            if (ch <= 0 || ch % NormNumGroups != 0)
            {
                throw Bad("block_out_channels", $"entry {ch} must be a positive multiple of norm_num_groups ({NormNumGroups})");
            }
            bool attnUsed = DownBlockTypes[i] == "CrossAttnDownBlock2D" || UpBlockTypes[n - 1 - i] == "CrossAttnUpBlock2D" || i == n - 1;
            if (attnUsed && ch % heads[i] != 0)
            {
                throw Bad(NumAttentionHeads is null ? "attention_head_dim" : "num_attention_heads",
                    $"entry {heads[i]} (the head count of block {i}) does not divide its {ch} channels");
            }
        }
    }

    /// <summary>A diffusers-compatible <c>config.json</c> text (keys sorted, unsupported features at their neutral values).</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["_class_name"] = ClassName,
            ["_diffusers_version"] = "0.30.0",
            ["act_fn"] = ActFn,
            ["addition_embed_type"] = AdditionEmbedType,
            ["addition_embed_type_num_heads"] = AdditionEmbedTypeNumHeads,
            ["addition_time_embed_dim"] = AdditionTimeEmbedDim,
            ["attention_head_dim"] = ConfigJson.IntOrArray(AttentionHeadDim),
            ["attention_type"] = "default",
            ["block_out_channels"] = ConfigJson.Ints(BlockOutChannels),
            ["center_input_sample"] = CenterInputSample,
            ["class_embed_type"] = null,
            ["class_embeddings_concat"] = false,
            ["conv_in_kernel"] = ConvInKernel,
            ["conv_out_kernel"] = ConvOutKernel,
            ["cross_attention_dim"] = ConfigJson.IntOrArray(CrossAttentionDim),
            ["cross_attention_norm"] = null,
            ["down_block_types"] = ConfigJson.Strings(DownBlockTypes),
            ["downsample_padding"] = DownsamplePadding,
            ["dropout"] = Dropout,
            ["dual_cross_attention"] = false,
            ["encoder_hid_dim"] = null,
            ["encoder_hid_dim_type"] = null,
            ["flip_sin_to_cos"] = FlipSinToCos,
            ["freq_shift"] = FreqShift,
            ["in_channels"] = InChannels,
            ["layers_per_block"] = ConfigJson.IntOrArray(LayersPerBlock),
            ["mid_block_only_cross_attention"] = null,
            ["mid_block_scale_factor"] = MidBlockScaleFactor,
            ["mid_block_type"] = MidBlockType,
            ["norm_eps"] = NormEps,
            ["norm_num_groups"] = NormNumGroups,
            ["num_attention_heads"] = NumAttentionHeads is null ? null : ConfigJson.IntOrArray(NumAttentionHeads),
            ["num_class_embeds"] = null,
            ["only_cross_attention"] = false,
            ["out_channels"] = OutChannels,
            ["projection_class_embeddings_input_dim"] = ProjectionClassEmbeddingsInputDim,
            ["resnet_out_scale_factor"] = ResnetOutScaleFactor,
            ["resnet_skip_time_act"] = false,
            ["resnet_time_scale_shift"] = "default",
            ["reverse_transformer_layers_per_block"] = null,
            ["sample_size"] = SampleSize,
            ["time_cond_proj_dim"] = null,
            ["time_embedding_act_fn"] = null,
            ["time_embedding_dim"] = TimeEmbeddingDim,
            ["time_embedding_type"] = "positional",
            ["timestep_post_act"] = null,
            ["transformer_layers_per_block"] = ConfigJson.IntOrArray(TransformerLayersPerBlock),
            ["up_block_types"] = ConfigJson.Strings(UpBlockTypes),
            ["upcast_attention"] = UpcastAttention,
            ["use_linear_projection"] = UseLinearProjection,
        };
        return ConfigJson.Write(o);
    }
}
