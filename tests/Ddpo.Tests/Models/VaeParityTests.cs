using Ddpo.Models.Loading;
using Ddpo.Models.Vae;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>The VAE reproduces diffusers' decoder output and encoder Gaussian on the tiny fixture.</summary>
public sealed class VaeParityTests
{
    private static readonly string Folder = TestPaths.Fixture("vae_tiny");

    [Fact]
    public void DecodeMatchesDiffusers()
    {
        using var scope = NewDisposeScope();
        using var vae = AutoencoderKL.FromPretrained(Folder);
        var io = SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));
        using var _ = no_grad();
        TensorAssert.Close(io["decoded"], vae.Decode(io["latents"]), what: "decoded");
    }

    [Fact]
    public void EncodeMatchesDiffusers()
    {
        using var scope = NewDisposeScope();
        using var vae = AutoencoderKL.FromPretrained(Folder);
        var io = SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));
        using var _ = no_grad();
        var (mean, std) = vae.Encode(io["image"]);
        TensorAssert.Close(io["latent_mean"], mean, what: "latent_mean");
        TensorAssert.Close(io["latent_std"], std, what: "latent_std");
        Assert.Equal(0.18215, vae.ScalingFactor, 6);
    }
}
