using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Models.T5;
using Ddpo.Models.Transformers;
using Ddpo.Models.Vae;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// Writes a small, randomly initialised <c>StableDiffusion3Pipeline</c> folder (diffusers layout, every component of
/// SD3 at toy sizes) for tests, demos and bug reports: CLIP-L and CLIP-G stand-ins with projection on a word-level
/// vocabulary of the paper's prompt words, T5 on a small sentencepiece vocabulary, an MM-DiT with QK RMS-norm and one
/// dual-attention block (SD3.5's), the 16-channel VAE with SD3's shift and scale, and the scheduler with shift 3.
/// </summary>
internal static class TinySd3Writer
{
    private const string T5Resources = "Ddpo.Pipelines.Data.t5_tiny.";

    /// <summary>The transformer configuration the options describe (SD3.5 style: <c>qk_norm = rms_norm</c>, block 0 dual).</summary>
    public static SD3Transformer2DModelConfig TransformerConfig(TinyTransformerOptions o) => new()
    {
        SampleSize = o.SampleSize,
        PatchSize = 2,
        InChannels = 16,
        OutChannels = 16,
        NumLayers = o.Layers,
        NumAttentionHeads = o.Heads,
        AttentionHeadDim = o.HeadDim,
        JointAttentionDim = 2 * o.TextHiddenSize,
        CaptionProjectionDim = o.Heads * o.HeadDim,
        PooledProjectionDim = 2 * o.TextHiddenSize,
        // Room for images twice the default side (in patches), as SD3's 192 allows more than its 128.
        PosEmbedMaxSize = o.SampleSize,
        DualAttentionLayers = [0],
        QkNorm = "rms_norm",
    };

    /// <summary>The 16-channel VAE (no quant convs; SD3's scaling and shift factors unless given, FLUX's are 0.3611 and 0.1159).</summary>
    public static AutoencoderKLConfig VaeConfig(TinyTransformerOptions o, double scalingFactor = 1.5305, double shiftFactor = 0.0609) => new()
    {
        BlockOutChannels = o.VaeChannels,
        DownBlockTypes = Enumerable.Repeat("DownEncoderBlock2D", o.VaeChannels.Length).ToArray(),
        UpBlockTypes = Enumerable.Repeat("UpDecoderBlock2D", o.VaeChannels.Length).ToArray(),
        LayersPerBlock = 1,
        LatentChannels = 16,
        NormNumGroups = o.NormGroups,
        SampleSize = o.SampleSize * (1 << (o.VaeChannels.Length - 1)),
        ScalingFactor = scalingFactor,
        ShiftFactor = shiftFactor,
        UseQuantConv = false,
        UsePostQuantConv = false,
    };

    /// <summary>Writes the pipeline folder (atomically: a temporary folder renamed into place).</summary>
    public static void Write(TinyTransformerOptions options, string directory)
    {
        options.Validate();
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new ArgumentException($"--out: '{directory}' exists and is not empty");
        }
        AtomicFile.WriteFolder(directory, temp => WriteInto(options, temp));
    }

    private static void WriteInto(TinyTransformerOptions o, string temp)
    {
        var words = TinyPipelineWriter.DefaultWords().ToList();
        for (int i = 0; i < 2; i++)
        {
            var tokenizerDir = Path.Combine(temp, i == 0 ? "tokenizer" : "tokenizer_2");
            ClipTokenizer.WriteWordLevelFiles(words, tokenizerDir);
            var tokenizer = ClipTokenizer.FromFolder(tokenizerDir);
            var config = TinyPipelineWriter.SmallTextConfig(tokenizer, o.TextHiddenSize, o.TextLayers, 4);
            using var text = new ClipTextModelWithProjection(config, new Generator((ulong)(o.Seed + 10 + i)));
            SeededInitializer.ApplyNormal(text, o.Seed + 10 + i);
            text.SavePretrained(Path.Combine(temp, i == 0 ? "text_encoder" : "text_encoder_2"));
        }
        WriteT5(o, Path.Combine(temp, "tokenizer_3"), Path.Combine(temp, "text_encoder_3"));
        using (var transformer = new SD3Transformer2DModel(TransformerConfig(o), new Generator((ulong)o.Seed)))
        {
            transformer.SavePretrained(Path.Combine(temp, "transformer"));
        }
        using (var vae = new AutoencoderKL(VaeConfig(o)))
        {
            SeededInitializer.Apply(vae, o.Seed + 1);
            vae.SavePretrained(Path.Combine(temp, "vae"));
        }
        var schedulerDir = Path.Combine(temp, "scheduler");
        Directory.CreateDirectory(schedulerDir);
        File.WriteAllText(Path.Combine(schedulerDir, "scheduler_config.json"),
            FlowMatchEulerDiscreteSchedulerConfig.StableDiffusion3().ToJson());
        StableDiffusion3Layout.WriteIndex(temp);
    }

    /// <summary>The small T5 (2 x the CLIP width, the embedded sentencepiece vocabulary) and its tokenizer folder.</summary>
    internal static void WriteT5(TinyTransformerOptions o, string tokenizerDir, string encoderDir)
    {
        WriteT5Tokenizer(tokenizerDir);
        var config = new T5Config
        {
            VocabSize = T5Tokenizer.FromFolder(tokenizerDir).VocabSize,
            DModel = 2 * o.TextHiddenSize,
            DKv = o.TextHiddenSize / 2,
            DFf = 4 * o.TextHiddenSize,
            NumLayers = o.TextLayers,
            NumHeads = 4,
        };
        using var t5 = new T5EncoderModel(config, new Generator((ulong)(o.Seed + 12)));
        t5.SavePretrained(encoderDir);
    }

    /// <summary>Writes the embedded small T5 tokenizer (spiece.model and its configs) to <paramref name="directory"/>.</summary>
    private static void WriteT5Tokenizer(string directory)
    {
        Directory.CreateDirectory(directory);
        var assembly = typeof(TinySd3Writer).Assembly;
        var names = assembly.GetManifestResourceNames().Where(n => n.StartsWith(T5Resources, StringComparison.Ordinal)).ToList();
        if (names.Count == 0) throw new InvalidOperationException("the small T5 tokenizer is not embedded in this build of Ddpo");
        foreach (var name in names)
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var file = File.Create(Path.Combine(directory, name[T5Resources.Length..]));
            stream.CopyTo(file);
        }
    }
}
