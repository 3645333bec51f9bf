using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Vae;

/// <summary>
/// diffusers <c>AutoencoderKL</c>: the Stable Diffusion VAE and the 16-channel one of SD3/FLUX (no quant convs, a
/// <see cref="ShiftFactor"/>). <see cref="Encode"/> gives the diagonal Gaussian of the latents and <see cref="Decode"/>
/// maps latents to images; neither applies <see cref="ScalingFactor"/> or <see cref="ShiftFactor"/>, which
/// <see cref="NormalizeLatents"/> and <see cref="DecodeNormalized"/> do as the pipelines do.
/// </summary>
internal sealed class AutoencoderKL : nn.Module
{
    [ComponentName(Name = "encoder")] private readonly VaeEncoder _encoder;
    [ComponentName(Name = "decoder")] private readonly VaeDecoder _decoder;
    [ComponentName(Name = "quant_conv")] private readonly Conv2d? _quantConv;
    [ComponentName(Name = "post_quant_conv")] private readonly Conv2d? _postQuantConv;

    /// <summary>The configuration the model was built from.</summary>
    public AutoencoderKLConfig Config { get; }

    /// <summary>The factor a pipeline multiplies encoded latents by (and divides by before decoding).</summary>
    public double ScalingFactor => Config.ScalingFactor;

    /// <summary>The shift a pipeline subtracts from encoded latents before scaling (SD3/FLUX); 0 when the config has none (SD).</summary>
    public double ShiftFactor => Config.ShiftFactor ?? 0.0;

    /// <summary>Builds the model with random weights, directly in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public AutoencoderKL(AutoencoderKLConfig config, ScalarType? dtype = null, Device? device = null) : base(nameof(AutoencoderKL))
    {
        config.Validate();
        Config = config;
        var o = new ModuleOptions(device, dtype);
        _encoder = new VaeEncoder(config, o);
        _decoder = new VaeDecoder(config, o);
        int latent2 = 2 * config.LatentChannels;
        _quantConv = config.UseQuantConv ? o.Conv(latent2, latent2, 1) : null;
        _postQuantConv = config.UsePostQuantConv ? o.Conv(config.LatentChannels, config.LatentChannels, 1) : null;
        RegisterComponents();
    }

    /// <summary>Loads a diffusers VAE folder in float32 on the CPU.</summary>
    public static AutoencoderKL FromPretrained(string directory) => FromPretrained(directory, ScalarType.Float32, CPU);

    /// <summary>
    /// Loads a diffusers VAE folder (<c>config.json</c> + <c>diffusion_pytorch_model[.fp16].safetensors</c> or
    /// a sharded checkpoint) strictly, converted to <paramref name="dtype"/> on <paramref name="device"/>, in eval mode.
    /// </summary>
    public static AutoencoderKL FromPretrained(string directory, ScalarType dtype, Device device) =>
        PretrainedFolder.Load(directory, dtype, () => new AutoencoderKL(AutoencoderKLConfig.Load(PretrainedFolder.ConfigPath(directory)), dtype, device));

    /// <summary>Writes <c>config.json</c> and <c>diffusion_pytorch_model.safetensors</c> to <paramref name="directory"/>.</summary>
    public void SavePretrained(string directory) => PretrainedFolder.Save(this, directory, Config.ToJson());

    /// <summary>The dtype of the model's weights.</summary>
    public ScalarType DType => _encoder.FirstWeight.dtype;

    /// <summary>The device of the model's weights.</summary>
    public Device Device => _encoder.FirstWeight.device;

    /// <summary>
    /// Encodes images [B, C, H, W] (values in [-1, 1]) to the latent Gaussian: its mean and standard deviation
    /// (log-variance clamped to [-30, 20]), each [B, latent_channels, H/f, W/f]. Inputs are converted to the model's dtype/device.
    /// </summary>
    public (Tensor Mean, Tensor Std) Encode(Tensor image)
    {
        image = Placement.To(image, DType, Device);
        var moments = _encoder.Forward(image);
        if (_quantConv is not null) moments = SafeConv.Call(_quantConv, moments);
        var parts = moments.chunk(2, 1);
        var logvar = parts[1].clamp(-30.0, 20.0);
        return (parts[0], (logvar * 0.5).exp());
    }

    /// <summary>Decodes latents [B, latent_channels, h, w] (already divided by the scaling factor) to images.</summary>
    public Tensor Decode(Tensor latents)
    {
        latents = Placement.To(latents, DType, Device);
        var z = _postQuantConv is null ? latents : SafeConv.Call(_postQuantConv, latents);
        return _decoder.Forward(z);
    }

    /// <summary>
    /// Encoded latents as the denoiser sees them: <c>(latents - shift_factor) · scaling_factor</c> (SD: the shift is
    /// absent, <c>latents · scaling_factor</c>).
    /// </summary>
    public Tensor NormalizeLatents(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var shifted = Config.ShiftFactor is { } shift ? latents - shift : latents;
        return (shifted * ScalingFactor).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Decodes the denoiser's latents as the pipelines do at the end: <c>Decode(latents / scaling_factor + shift_factor)</c>
    /// (SD: no shift, <c>Decode(latents / scaling_factor)</c>).
    /// </summary>
    public Tensor DecodeNormalized(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var z = latents / ScalingFactor;
        if (Config.ShiftFactor is { } shift) z = z + shift;
        return Decode(z).MoveToOuterDisposeScope();
    }
}
