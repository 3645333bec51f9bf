using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// Writes a small, randomly initialised <c>StableDiffusionXLPipeline</c> folder (diffusers layout, every component of
/// SDXL at toy sizes) for tests, demos and bug reports: a CLIP-L stand-in (CLIPTextModel) and a bigG stand-in (with
/// projection) on the word-level vocabulary of the paper's prompt words, a text_time UNet laid out as SDXL's (no
/// attention at the top level, more transformer layers lower down), the 4-channel VAE with SDXL's scaling factor
/// 0.13025, and Stable Diffusion's DDIM scheduler.
/// </summary>
internal static class TinySdxlWriter
{
    /// <summary>Width of each time id's sinusoid (SDXL's is 256).</summary>
    public const int AdditionTimeEmbedDim = 8;

    /// <summary>SDXL's VAE <c>scaling_factor</c>.</summary>
    public const double SdxlScalingFactor = 0.13025;

    /// <summary>
    /// The UNet the options describe: <see cref="TinyPipelineOptions.UnetChannels"/> levels, cross-attention in all but
    /// the top one (SDXL's layout, the reverse of SD 1's), block i with i + 1 transformer layers (SDXL: 1 / 2 / 10),
    /// cross-attention over both encoders' states (2 x text width) and add_embedding over bigG's pooled projection + 6 ids.
    /// </summary>
    public static UNet2DConditionConfig UnetConfig(TinyPipelineOptions o)
    {
        int blocks = o.UnetChannels.Length;
        bool Attention(int i) => blocks == 1 || i > 0;
        return new UNet2DConditionConfig
        {
            SampleSize = o.SampleSize,
            BlockOutChannels = o.UnetChannels,
            DownBlockTypes = Enumerable.Range(0, blocks).Select(i => Attention(i) ? "CrossAttnDownBlock2D" : "DownBlock2D").ToArray(),
            UpBlockTypes = Enumerable.Range(0, blocks).Select(i => Attention(blocks - 1 - i) ? "CrossAttnUpBlock2D" : "UpBlock2D").ToArray(),
            LayersPerBlock = Enumerable.Repeat(o.LayersPerBlock, blocks).ToArray(),
            NormNumGroups = o.NormGroups,
            CrossAttentionDim = Enumerable.Repeat(2 * o.TextHiddenSize, blocks).ToArray(),
            AttentionHeadDim = Enumerable.Repeat(o.AttentionHeads, blocks).ToArray(),
            TransformerLayersPerBlock = Enumerable.Range(1, blocks).ToArray(),
            UseLinearProjection = true,
            AdditionEmbedType = UNet2DConditionConfig.TextTime,
            AdditionTimeEmbedDim = AdditionTimeEmbedDim,
            ProjectionClassEmbeddingsInputDim = o.TextHiddenSize + StableDiffusionXLPipeline.TimeIdCount * AdditionTimeEmbedDim,
        };
    }

    /// <summary>Writes the pipeline folder (atomically: a temporary folder renamed into place).</summary>
    public static void Write(TinyPipelineOptions options, string directory)
    {
        if (!options.WithVae) throw new ArgumentException("--no-vae: an SDXL pipeline is a latent model (it has a VAE)");
        if (options.TokenizerSource is not null) throw new ArgumentException("--tokenizer: the tiny SDXL writes its own word-level vocabularies");
        options.Validate();
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new ArgumentException($"--out: '{directory}' exists and is not empty");
        }
        AtomicFile.WriteFolder(directory, temp => WriteInto(options, temp));
    }

    private static void WriteInto(TinyPipelineOptions o, string temp)
    {
        var words = TinyPipelineWriter.DefaultWords().ToList();
        foreach (var name in new[] { "tokenizer", "tokenizer_2" }) ClipTokenizer.WriteWordLevelFiles(words, Path.Combine(temp, name));
        var config = TinyPipelineWriter.SmallTextConfig(ClipTokenizer.FromFolder(Path.Combine(temp, "tokenizer")), o.TextHiddenSize, o.TextLayers, o.AttentionHeads);
        using (var text = new ClipTextModel(config, new Generator((ulong)(o.Seed + 10))))
        {
            SeededInitializer.ApplyNormal(text, o.Seed + 10);
            text.SavePretrained(Path.Combine(temp, "text_encoder"));
        }
        using (var text2 = new ClipTextModelWithProjection(config, new Generator((ulong)(o.Seed + 11))))
        {
            SeededInitializer.ApplyNormal(text2, o.Seed + 11);
            text2.SavePretrained(Path.Combine(temp, "text_encoder_2"));
        }
        using (var unet = new UNet2DConditionModel(UnetConfig(o)))
        {
            SeededInitializer.Apply(unet, o.Seed);
            unet.SavePretrained(Path.Combine(temp, "unet"));
        }
        var vaeConfig = TinyPipelineWriter.VaeConfig(o)!;
        vaeConfig.ScalingFactor = SdxlScalingFactor;
        using (var vae = new AutoencoderKL(vaeConfig))
        {
            SeededInitializer.Apply(vae, o.Seed + 1);
            vae.SavePretrained(Path.Combine(temp, "vae"));
        }
        var schedulerDir = Path.Combine(temp, "scheduler");
        Directory.CreateDirectory(schedulerDir);
        File.WriteAllText(Path.Combine(schedulerDir, "scheduler_config.json"), DdimSchedulerConfig.StableDiffusion(o.PredictionType).ToJson());
        StableDiffusionXLLayout.WriteIndex(temp);
    }
}
