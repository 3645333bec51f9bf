using Ddpo.Pipelines;

namespace Ddpo.Tests.Support;

/// <summary>Small pipeline folders written once per test run (init-tiny), shared by tests that only read them.</summary>
public static class TinyModels
{
    private static readonly Lazy<string> LatentModel = new(() => Write("latent", new TinyPipelineOptions()));
    private static readonly Lazy<string> PixelModel = new(() => Write("pixel", new TinyPipelineOptions
    {
        WithVae = false, SampleSize = 16, UnetChannels = [16, 32], TextHiddenSize = 16, Seed = 1,
    }));

    /// <summary>A latent-space tiny pipeline (VAE, 16x16 latents, 32x32 images).</summary>
    public static string Latent => LatentModel.Value;

    /// <summary>A pixel-space tiny pipeline (no VAE, 16x16 RGB), fastest to sample and train.</summary>
    public static string Pixel => PixelModel.Value;

    private static string Write(string name, TinyPipelineOptions options)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"ddpo-tiny-{name}-{Environment.ProcessId}");
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        TinyPipelineWriter.Write(options, dir);
        return dir;
    }
}
