using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Prompts;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// Writes a small, randomly initialised text-to-image pipeline in diffusers layout (the same
/// classes and files as Stable Diffusion, at toy sizes), for tests, demos, bug reports and as the
/// starting point of the built-in model.
/// </summary>
internal static class TinyPipelineWriter
{
    /// <summary>The UNet configuration the options describe.</summary>
    public static UNet2DConditionConfig UnetConfig(TinyPipelineOptions o)
    {
        int blocks = o.UnetChannels.Length;
        int channels = o.WithVae ? 4 : 3;
        return new UNet2DConditionConfig
        {
            SampleSize = o.SampleSize,
            InChannels = channels,
            OutChannels = channels,
            BlockOutChannels = o.UnetChannels,
            DownBlockTypes = Enumerable.Range(0, blocks).Select(i => HasAttention(o, i) ? "CrossAttnDownBlock2D" : "DownBlock2D").ToArray(),
            UpBlockTypes = Enumerable.Range(0, blocks).Select(i => HasAttention(o, blocks - 1 - i) ? "CrossAttnUpBlock2D" : "UpBlock2D").ToArray(),
            LayersPerBlock = Enumerable.Repeat(o.LayersPerBlock, blocks).ToArray(),
            NormNumGroups = o.NormGroups,
            CrossAttentionDim = Enumerable.Repeat(o.TextHiddenSize, blocks).ToArray(),
            AttentionHeadDim = Enumerable.Repeat(o.AttentionHeads, blocks).ToArray(),
            TransformerLayersPerBlock = Enumerable.Repeat(1, blocks).ToArray(),
        };
    }

    /// <summary>
    /// Whether down block <paramref name="i"/> (and its mirror up block) has cross-attention. Latent
    /// models follow Stable Diffusion (all but the lowest resolution); pixel-space models skip the
    /// full-resolution block instead, where attention over every pixel would dominate the cost.
    /// </summary>
    public static bool HasAttention(TinyPipelineOptions o, int i)
    {
        int blocks = o.UnetChannels.Length;
        if (blocks == 1) return true;
        return o.WithVae ? i < blocks - 1 : i > 0;
    }

    /// <summary>The VAE configuration the options describe (null without a VAE).</summary>
    public static AutoencoderKLConfig? VaeConfig(TinyPipelineOptions o) => !o.WithVae ? null : new AutoencoderKLConfig
    {
        BlockOutChannels = o.VaeChannels,
        DownBlockTypes = Enumerable.Repeat("DownEncoderBlock2D", o.VaeChannels.Length).ToArray(),
        UpBlockTypes = Enumerable.Repeat("UpDecoderBlock2D", o.VaeChannels.Length).ToArray(),
        LayersPerBlock = 1,
        NormNumGroups = o.NormGroups,
        SampleSize = o.SampleSize * (1 << (o.VaeChannels.Length - 1)),
    };

    /// <summary>A small CLIP text encoder's config for <paramref name="tokenizer"/>: MLP 4 x hidden, projection = hidden.</summary>
    internal static ClipTextConfig SmallTextConfig(ClipTokenizer tokenizer, int hidden, int layers, int heads) => new()
    {
        VocabSize = tokenizer.VocabSize,
        HiddenSize = hidden,
        IntermediateSize = hidden * 4,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        BosTokenId = tokenizer.BosTokenId,
        EosTokenId = tokenizer.EosTokenId,
        PadTokenId = tokenizer.PadTokenId,
        ProjectionDim = hidden,
    };

    /// <summary>The words of the small vocabulary written when no CLIP tokenizer is given: the paper's prompt words.</summary>
    public static IEnumerable<string> DefaultWords() =>
        new[] { "a", "an", "the", "image", "contains" }
            .Concat(PromptLists.Load("simple_animals.txt"))
            .Concat(PromptLists.Load("activities.txt").SelectMany(a => a.Split(' ')));

    /// <summary>Writes the pipeline folder (atomically: a temporary folder renamed into place).</summary>
    public static void Write(TinyPipelineOptions options, string directory)
    {
        options.Validate();
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new ArgumentException($"--out: '{directory}' exists and is not empty");
        }
        AtomicFile.WriteFolder(directory, temp => WriteInto(options, temp));
    }

    private static void WriteInto(TinyPipelineOptions options, string temp)
    {
        var tokenizerDir = Path.Combine(temp, "tokenizer");
        Directory.CreateDirectory(tokenizerDir);
        if (options.TokenizerSource is { } source)
        {
            foreach (var name in new[] { "vocab.json", "merges.txt" })
            {
                var file = Path.Combine(source, name);
                if (!File.Exists(file)) throw new ArgumentException($"--tokenizer: '{file}' not found (expected CLIP's vocab.json and merges.txt)");
                File.Copy(file, Path.Combine(tokenizerDir, name));
            }
            foreach (var name in new[] { "special_tokens_map.json", "tokenizer_config.json" })
            {
                var file = Path.Combine(source, name);
                if (File.Exists(file)) File.Copy(file, Path.Combine(tokenizerDir, name));
            }
        }
        else
        {
            ClipTokenizer.WriteWordLevelFiles(DefaultWords(), tokenizerDir);
        }
        var tokenizer = ClipTokenizer.FromFolder(tokenizerDir);

        var textConfig = SmallTextConfig(tokenizer, options.TextHiddenSize, options.TextLayers, options.AttentionHeads);
        using (var text = new ClipTextModel(textConfig, new Generator((ulong)options.Seed)))
        {
            SeededInitializer.ApplyNormal(text, options.Seed + 2);
            text.SavePretrained(Path.Combine(temp, "text_encoder"));
        }
        using (var unet = new UNet2DConditionModel(UnetConfig(options)))
        {
            SeededInitializer.Apply(unet, options.Seed);
            unet.SavePretrained(Path.Combine(temp, "unet"));
        }
        if (VaeConfig(options) is { } vaeConfig)
        {
            using var vae = new AutoencoderKL(vaeConfig);
            SeededInitializer.Apply(vae, options.Seed + 1);
            vae.SavePretrained(Path.Combine(temp, "vae"));
        }
        var schedulerDir = Path.Combine(temp, "scheduler");
        Directory.CreateDirectory(schedulerDir);
        File.WriteAllText(Path.Combine(schedulerDir, "scheduler_config.json"),
            DdimSchedulerConfig.StableDiffusion(options.PredictionType).ToJson());
        PipelineLayout.WriteIndex(temp, options.WithVae);
    }
}
