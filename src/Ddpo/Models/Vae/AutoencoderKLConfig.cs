using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Blocks;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Vae;

/// <summary>The configuration of a diffusers <c>AutoencoderKL</c> (defaults are diffusers').</summary>
internal sealed class AutoencoderKLConfig
{
    /// <summary>The diffusers class name written to and expected in <c>config.json</c>.</summary>
    public const string ClassName = "AutoencoderKL";

    /// <summary>Image channels in.</summary>
    public int InChannels { get; set; } = 3;

    /// <summary>Image channels out.</summary>
    public int OutChannels { get; set; } = 3;

    /// <summary>Encoder block types (only <c>DownEncoderBlock2D</c>).</summary>
    public string[] DownBlockTypes { get; set; } = ["DownEncoderBlock2D"];

    /// <summary>Decoder block types (only <c>UpDecoderBlock2D</c>).</summary>
    public string[] UpBlockTypes { get; set; } = ["UpDecoderBlock2D"];

    /// <summary>Channels of each encoder block (the decoder uses them reversed).</summary>
    public int[] BlockOutChannels { get; set; } = [64];

    /// <summary>ResNets per encoder block (decoder blocks have one more).</summary>
    public int LayersPerBlock { get; set; } = 1;

    /// <summary>Activation (only <c>silu</c>).</summary>
    public string ActFn { get; set; } = "silu";

    /// <summary>Latent channels.</summary>
    public int LatentChannels { get; set; } = 4;

    /// <summary>Groups of every GroupNorm.</summary>
    public int NormNumGroups { get; set; } = 32;

    /// <summary>Image size the model was trained at (informational).</summary>
    public int SampleSize { get; set; } = 32;

    /// <summary>Factor a pipeline multiplies latents by after encoding (divides before decoding).</summary>
    public double ScalingFactor { get; set; } = 0.18215;

    /// <summary>Shift a pipeline subtracts from latents before scaling (SD3/Flux), or null.</summary>
    public double? ShiftFactor { get; set; }

    /// <summary>Whether the VAE should run in float32 even in half-precision pipelines.</summary>
    public bool ForceUpcast { get; set; } = true;

    /// <summary>Whether the encoder output passes through the 1x1 <c>quant_conv</c>.</summary>
    public bool UseQuantConv { get; set; } = true;

    /// <summary>Whether latents pass through the 1x1 <c>post_quant_conv</c> before decoding.</summary>
    public bool UsePostQuantConv { get; set; } = true;

    /// <summary>Whether the encoder/decoder mid blocks have a self-attention layer.</summary>
    public bool MidBlockAddAttention { get; set; } = true;

    /// <summary>The Stable Diffusion 1.x/2.x VAE.</summary>
    public static AutoencoderKLConfig StableDiffusion() => new()
    {
        BlockOutChannels = [128, 256, 512, 512],
        DownBlockTypes = Enumerable.Repeat("DownEncoderBlock2D", 4).ToArray(),
        UpBlockTypes = Enumerable.Repeat("UpDecoderBlock2D", 4).ToArray(),
        LayersPerBlock = 2,
        SampleSize = 512,
    };

    /// <summary>Reads a <c>config.json</c> file (see <see cref="FromJson"/>).</summary>
    public static AutoencoderKLConfig Load(string configJsonPath) => FromJson(JsonConfig.Load(configJsonPath));

    /// <summary>Builds the config from diffusers JSON; unsupported values are a <see cref="ConfigException"/> naming the field.</summary>
    public static AutoencoderKLConfig FromJson(JsonConfig cfg)
    {
        ConfigJson.RequireClass(cfg, ClassName);
        cfg.RequireUnset("latents_mean", "per-channel latent statistics are not implemented");
        cfg.RequireUnset("latents_std", "per-channel latent statistics are not implemented");
        var d = new AutoencoderKLConfig();
        var c = new AutoencoderKLConfig
        {
            InChannels = cfg.GetInt("in_channels", d.InChannels),
            OutChannels = cfg.GetInt("out_channels", d.OutChannels),
            DownBlockTypes = cfg.GetStringArray("down_block_types", d.DownBlockTypes),
            UpBlockTypes = cfg.GetStringArray("up_block_types", d.UpBlockTypes),
            BlockOutChannels = cfg.GetIntArray("block_out_channels", d.BlockOutChannels),
            LayersPerBlock = cfg.GetInt("layers_per_block", d.LayersPerBlock),
            ActFn = cfg.GetChoice("act_fn", d.ActFn, "silu"),
            LatentChannels = cfg.GetInt("latent_channels", d.LatentChannels),
            NormNumGroups = cfg.GetInt("norm_num_groups", d.NormNumGroups),
            SampleSize = cfg.GetInt("sample_size", d.SampleSize),
            ScalingFactor = cfg.GetDouble("scaling_factor", d.ScalingFactor),
            ShiftFactor = cfg.Has("shift_factor") ? cfg.GetDouble("shift_factor", 0) : null,
            ForceUpcast = cfg.GetBool("force_upcast", d.ForceUpcast),
            UseQuantConv = cfg.GetBool("use_quant_conv", d.UseQuantConv),
            UsePostQuantConv = cfg.GetBool("use_post_quant_conv", d.UsePostQuantConv),
            MidBlockAddAttention = cfg.GetBool("mid_block_add_attention", d.MidBlockAddAttention),
        };
        c.Validate(cfg.Source);
        return c;
    }

    /// <summary>Checks the values are consistent and supported; throws <see cref="ConfigException"/> naming the field.</summary>
    public void Validate(string source = "AutoencoderKLConfig")
    {
        ConfigException Bad(string field, string message) => new($"{source}: field '{field}' {message}");
        int n = BlockOutChannels.Length;
        if (n == 0) throw Bad("block_out_channels", "must list at least one block");
        if (DownBlockTypes.Length != n) throw Bad("down_block_types", $"has {DownBlockTypes.Length} entries but block_out_channels has {n}");
        if (UpBlockTypes.Length != n) throw Bad("up_block_types", $"has {UpBlockTypes.Length} entries but block_out_channels has {n}");
        foreach (var t in DownBlockTypes.Where(t => t != "DownEncoderBlock2D"))
        {
            throw Bad("down_block_types", $"entry \"{t}\" is not supported (expected DownEncoderBlock2D)");
        }
        foreach (var t in UpBlockTypes.Where(t => t != "UpDecoderBlock2D"))
        {
            throw Bad("up_block_types", $"entry \"{t}\" is not supported (expected UpDecoderBlock2D)");
        }
        if (ActFn != "silu") throw Bad("act_fn", $"\"{ActFn}\" is not supported (expected silu)");
        if (NormNumGroups <= 0) throw Bad("norm_num_groups", "must be positive");
        if (LayersPerBlock <= 0) throw Bad("layers_per_block", "must be positive");
        if (InChannels <= 0 || OutChannels <= 0 || LatentChannels <= 0) throw Bad("in_channels/out_channels/latent_channels", "must be positive");
        foreach (var ch in BlockOutChannels.Where(ch => ch <= 0 || ch % NormNumGroups != 0))
        {
            throw Bad("block_out_channels", $"entry {ch} must be a positive multiple of norm_num_groups ({NormNumGroups})");
        }
    }

    /// <summary>A diffusers-compatible <c>config.json</c> text (keys sorted).</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["_class_name"] = ClassName,
            ["_diffusers_version"] = "0.30.0",
            ["act_fn"] = ActFn,
            ["block_out_channels"] = ConfigJson.Ints(BlockOutChannels),
            ["down_block_types"] = ConfigJson.Strings(DownBlockTypes),
            ["force_upcast"] = ForceUpcast,
            ["in_channels"] = InChannels,
            ["latent_channels"] = LatentChannels,
            ["latents_mean"] = null,
            ["latents_std"] = null,
            ["layers_per_block"] = LayersPerBlock,
            ["mid_block_add_attention"] = MidBlockAddAttention,
            ["norm_num_groups"] = NormNumGroups,
            ["out_channels"] = OutChannels,
            ["sample_size"] = SampleSize,
            ["scaling_factor"] = ScalingFactor,
            ["shift_factor"] = ShiftFactor,
            ["up_block_types"] = ConfigJson.Strings(UpBlockTypes),
            ["use_post_quant_conv"] = UsePostQuantConv,
            ["use_quant_conv"] = UseQuantConv,
        };
        return ConfigJson.Write(o);
    }
}
