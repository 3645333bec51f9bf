using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using Ddpo.Models.Vae;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>
/// The 16-channel VAE of SD3/FLUX (refenv/vae: diffusers 0.31 <c>AutoencoderKL</c>, latent_channels 16, no quant
/// convs, <c>shift_factor</c> 0.0609, <c>scaling_factor</c> 1.5305, odd latent sizes): encode, decode, the pipelines'
/// normalisation both ways, float64 and gradients; and the real model's keys and shapes from the manifest.
/// </summary>
public sealed class Vae16Tests
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "vae");
    private static readonly string ModelFolder = Path.Combine(Folder, "model");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    [Fact]
    public void LoadsTheSd3Config()
    {
        using var vae = AutoencoderKL.FromPretrained(ModelFolder);
        Assert.Equal(16, vae.Config.LatentChannels);
        Assert.False(vae.Config.UseQuantConv);
        Assert.False(vae.Config.UsePostQuantConv);
        Assert.Equal(1.5305, vae.ScalingFactor);
        Assert.Equal(0.0609, vae.ShiftFactor);
        Assert.DoesNotContain(vae.named_parameters(), p => p.name.Contains("quant_conv"));
        Assert.Equal(69799, vae.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void EncodeAndNormalizeMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var vae = AutoencoderKL.FromPretrained(ModelFolder);
        using var _ = no_grad();
        var (mean, std) = vae.Encode(io["image"]);
        TensorAssert.Close(io["latent_mean"], mean, what: "latent_mean");
        TensorAssert.Close(io["latent_std"], std, what: "latent_std");
        TensorAssert.Close(io["latent_logvar"], 2 * std.log(), what: "latent_logvar");
        TensorAssert.Close(io["latents_normalised"], vae.NormalizeLatents(mean), what: "(mean - shift) * scale");
    }

    [Fact]
    public void DecodeAndThePipelinesDecodeMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var vae = AutoencoderKL.FromPretrained(ModelFolder);
        using var _ = no_grad();
        TensorAssert.Close(io["decoded"], vae.Decode(io["z"]), what: "decode(z)");
        TensorAssert.Close(io["decoded_from_normalised"], vae.DecodeNormalized(io["z"]), what: "decode(z / scale + shift)");
    }

    [Fact]
    public void Float64MatchesDiffusersFloat64()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var vae = AutoencoderKL.FromPretrained(ModelFolder, ScalarType.Float64, CPU);
        using var _ = no_grad();
        var (mean, _) = vae.Encode(io["image"].to(ScalarType.Float64));
        Assert.Equal(ScalarType.Float64, mean.dtype);
        TensorAssert.Close(io["latent_mean_f64"], mean, atol: 1e-9, rtol: 1e-9, what: "latent_mean_f64");
        TensorAssert.Close(io["decoded_f64"], vae.Decode(io["z"].to(ScalarType.Float64)), atol: 1e-9, rtol: 1e-9, what: "decoded_f64");
    }

    [Fact]
    public void GradientsMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var vae = AutoencoderKL.FromPretrained(ModelFolder);
        var z = io["z"].detach().requires_grad_(true);
        var loss = (vae.Decode(z) * io["grad_w"]).sum();
        TensorAssert.Close(io["grad_loss"], loss.reshape(1), what: "loss");
        loss.backward();
        TensorAssert.Close(io["grad_z"], z.grad!, atol: 1e-5, rtol: 1e-3, what: "d loss / d z");
        var weight = vae.named_parameters().Single(p => p.name == "decoder.mid_block.attentions.0.to_q.weight").parameter;
        TensorAssert.Close(io["grad_weight"], weight.grad!, atol: 1e-5, rtol: 1e-3, what: "d loss / d decoder.mid_block.attentions.0.to_q.weight");
    }

    [Fact]
    public void StableDiffusionVaeKeepsItsDecode()
    {
        // No shift_factor: the pipelines' decode is latents / scaling_factor, as before.
        using var scope = NewDisposeScope();
        var folder = TestPaths.Fixture("vae_tiny");
        var io = SafetensorsFile.Load(Path.Combine(folder, "io.safetensors"));
        using var vae = AutoencoderKL.FromPretrained(folder);
        using var _ = no_grad();
        Assert.Null(vae.Config.ShiftFactor);
        Assert.Equal(0.0, vae.ShiftFactor);
        var latents = io["latents"] * vae.ScalingFactor;
        TensorAssert.Close(vae.Decode(latents / vae.ScalingFactor), vae.DecodeNormalized(latents), atol: 0, rtol: 0, what: "SD decode");
        TensorAssert.Close(latents, vae.NormalizeLatents(io["latents"]), atol: 0, rtol: 0, what: "SD normalise");
    }

    [Fact]
    public void RealSizeModelHasTheManifestsKeysAndShapes()
    {
        var manifest = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "manifest", "sd3_flux_vae.json")))!;
        var config = AutoencoderKLConfig.FromJson(new JsonConfig((JsonObject)manifest["config"]!, "sd3_flux_vae.json"));
        // On the meta device: shapes without 84 M parameters' memory.
        using var vae = new AutoencoderKL(config, ScalarType.Float32, new Device(DeviceType.META));
        var expected = ((JsonObject)manifest["keys"]!).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(d => d!.GetValue<long>()).ToArray());
        var actual = vae.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(manifest["n_state_dict_keys"]!.GetValue<int>(), actual.Count);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(actual[key]), $"{key}: manifest [{string.Join(", ", shape)}], model [{string.Join(", ", actual[key])}]");
        Assert.Equal(manifest["n_parameters"]!.GetValue<long>(), vae.parameters().Sum(p => p.numel()));
        Assert.Equal(DeviceType.META, vae.Device.type);
    }
}
