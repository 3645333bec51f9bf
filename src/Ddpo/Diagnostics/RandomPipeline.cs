using Ddpo.Models.Clip;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Pipelines;
using Ddpo.Schedulers;
using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>
/// A text-to-image pipeline of a given size with random weights, built in memory on the device (speed does not
/// depend on the weights, and nothing of gigabytes needs to travel). The tokenizer is a word-level one over the
/// paper's prompt words: the text encoder's cost is that of 77 tokens whatever the ids.
/// </summary>
internal static class RandomPipeline
{
    /// <summary>Builds the pipeline in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public static TextToImagePipeline Build(GpuCheckSizes sizes, Device device, ScalarType dtype, long seed = 0)
    {
        var tokenizerDir = Path.Combine(Path.GetTempPath(), $"ddpo-gpu-check-tokenizer-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tokenizerDir);
        ClipTokenizer tokenizer;
        try
        {
            ClipTokenizer.WriteWordLevelFiles(TinyPipelineWriter.DefaultWords(), tokenizerDir);
            tokenizer = ClipTokenizer.FromFolder(tokenizerDir);
        }
        finally
        {
            Directory.Delete(tokenizerDir, recursive: true);
        }
        var textConfig = TinyPipelineWriter.SmallTextConfig(tokenizer, sizes.TextHidden, sizes.TextLayers, sizes.TextHeads);
        var unetConfig = sizes.Unet;
        var text = new ClipTextModel(textConfig, new Generator((ulong)seed + 1));
        text.to(dtype).to(device);
        var unet = new UNet2DConditionModel(unetConfig, dtype, device);
        var vae = new AutoencoderKL(sizes.Vae, dtype, device);
        var scheduler = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        return new TextToImagePipeline(unet, vae, text, tokenizer, scheduler, device, dtype);
    }
}
