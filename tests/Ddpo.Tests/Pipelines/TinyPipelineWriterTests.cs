using Ddpo.Pipelines;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Pipelines;

public sealed class TinyPipelineWriterTests
{
    [Fact]
    public void SameSeedWritesIdenticalWeightsWhateverElseUsesTheGlobalGenerator()
    {
        var a = TestPaths.NewTempDir();
        var b = TestPaths.NewTempDir();
        var options = new TinyPipelineOptions { Seed = 7 };
        TinyPipelineWriter.Write(options, Path.Combine(a, "m"));
        TorchSharp.torch.randn(1000).Dispose(); // other work moving the process-wide generator
        TinyPipelineWriter.Write(options, Path.Combine(b, "m"));
        foreach (var file in new[] { "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
        {
            Assert.True(File.ReadAllBytes(Path.Combine(a, "m", file)).SequenceEqual(File.ReadAllBytes(Path.Combine(b, "m", file))), file);
        }
        TinyPipelineWriter.Write(options with { Seed = 8 }, Path.Combine(b, "other"));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(a, "m", "unet/diffusion_pytorch_model.safetensors")),
            File.ReadAllBytes(Path.Combine(b, "other", "unet/diffusion_pytorch_model.safetensors")));
        Directory.Delete(a, true);
        Directory.Delete(b, true);
    }
}
