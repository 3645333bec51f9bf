using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Pipelines;

public sealed class TextToImagePipelineTests
{
    private static readonly SamplingOptions Options = new() { NumSteps = 4, GuidanceScale = 3.0, Eta = 1.0, RecordTrajectory = true };

    [Fact]
    public void SamplingRecordsATrajectoryWhoseLogProbsRescoreExactly()
    {
        using var pipe = TextToImagePipeline.FromPretrained(TinyModels.Latent);
        using var r = pipe.Sample(["a cat", "a dog riding a bike"], Options, new Generator(5));
        Assert.Equal(new long[] { 2, 3, 32, 32 }, r.Images.shape);
        Assert.True(r.Images.min().item<float>() >= 0 && r.Images.max().item<float>() <= 1);
        var t = r.Trajectory!;
        Assert.Equal(new long[] { 2, 5, 4, 16, 16 }, t.Latents.shape);
        Assert.Equal(new long[] { 2, 4 }, t.LogProbs.shape);
        Assert.Equal(pipe.Scheduler.Timesteps, t.Timesteps);
        using var _ = no_grad();
        for (int i = 0; i < t.Steps; i++)
        {
            var ts = full(new long[] { 2 }, t.Timesteps[i], dtype: ScalarType.Int64);
            var eps = pipe.PredictNoise(t.Latents[.., i], ts, t.PromptEmbeds, t.NegativeEmbeds, Options.GuidanceScale);
            var step = pipe.Scheduler.Step(eps, ts, t.Latents[.., i], Options.Eta, prevSample: t.Latents[.., i + 1]);
            // The training-time recomputation must equal the sampling-time log-prob (ratio exactly 1).
            Assert.Equal(t.LogProbs[.., i].data<float>().ToArray(), step.LogProb.data<float>().ToArray());
        }
    }

    [Fact]
    public void SameSeedGivesSameImagesAndAnotherSeedDiffers()
    {
        using var pipe = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        var o = Options with { RecordTrajectory = false };
        using var a = pipe.Sample(["a cat"], o, new Generator(11));
        using var b = pipe.Sample(["a cat"], o, new Generator(11));
        using var c = pipe.Sample(["a cat"], o, new Generator(12));
        Assert.Equal(0f, (a.Images - b.Images).abs().max().item<float>());
        Assert.True((a.Images - c.Images).abs().max().item<float>() > 0.01f);
        Assert.Equal(new long[] { 1, 3, 16, 16 }, a.Images.shape);
        Assert.Null(a.Trajectory);
    }

    [Fact]
    public void MissingComponentFolderIsNamed()
    {
        var dir = TestPaths.NewTempDir();
        CopyDirectory(TinyModels.Pixel, dir);
        Directory.Delete(Path.Combine(dir, "text_encoder"), true);
        var e = Assert.Throws<ModelLoadException>(() => TextToImagePipeline.FromPretrained(dir));
        Assert.Contains("text_encoder", e.Message);
        File.Delete(Path.Combine(dir, "model_index.json"));
        e = Assert.Throws<ModelLoadException>(() => TextToImagePipeline.FromPretrained(dir));
        Assert.Contains("model_index.json", e.Message);
        Directory.Delete(dir, true);
        Assert.Contains("not found", Assert.Throws<ModelLoadException>(() => TextToImagePipeline.FromPretrained(dir)).Message);
    }

    [Fact]
    public void CorruptUnetWeightsAreNamed()
    {
        var dir = TestPaths.NewTempDir();
        CopyDirectory(TinyModels.Pixel, dir);
        var weights = Path.Combine(dir, "unet", "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<ModelLoadException>(() => TextToImagePipeline.FromPretrained(dir));
        Assert.Contains(weights, e.Message);
        Assert.Contains("truncated", e.Message);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void BadSamplingOptionsAreRejected()
    {
        using var pipe = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        Assert.Contains("steps", Assert.Throws<ArgumentException>(() => pipe.Sample(["a cat"], Options with { NumSteps = 0 })).Message);
        Assert.Contains("eta", Assert.Throws<ArgumentException>(() => pipe.Sample(["a cat"], Options with { Eta = -1 })).Message);
        Assert.Contains("multiples", Assert.Throws<ArgumentException>(() =>
        {
            using var latent = TextToImagePipeline.FromPretrained(TinyModels.Latent);
            latent.Sample(["a cat"], Options with { Height = 33, Width = 33 });
        }).Message);
    }

    internal static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyDirectory(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
