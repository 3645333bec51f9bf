using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Models.Transformers;
using Ddpo.Models.Vae;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// Writes a small, randomly initialised <c>FluxPipeline</c> folder (diffusers layout, FLUX.1-dev's components at toy
/// sizes): a CLIP text encoder (pooled) on a word-level vocabulary of the paper's prompt words, T5 on a small
/// sentencepiece vocabulary, a FLUX transformer with as many single-stream as double-stream blocks and the guidance
/// embedding, the 16-channel VAE with FLUX's shift and scale, and the scheduler with dynamic shifting.
/// </summary>
internal static class TinyFluxWriter
{
    /// <summary>The transformer configuration the options describe (3-axis RoPE splitting the head width as FLUX does, roughly 1:3.5:3.5).</summary>
    public static FluxTransformer2DModelConfig TransformerConfig(TinyTransformerOptions o)
    {
        int side = 2 * (3 * o.HeadDim / 16);
        return new FluxTransformer2DModelConfig
        {
            PatchSize = 1,
            InChannels = 64,
            NumLayers = o.Layers,
            NumSingleLayers = o.Layers,
            AttentionHeadDim = o.HeadDim,
            NumAttentionHeads = o.Heads,
            JointAttentionDim = 2 * o.TextHiddenSize,
            PooledProjectionDim = o.TextHiddenSize,
            GuidanceEmbeds = true,
            AxesDimsRope = [o.HeadDim - 2 * side, side, side],
        };
    }

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
        var tokenizerDir = Path.Combine(temp, "tokenizer");
        ClipTokenizer.WriteWordLevelFiles(TinyPipelineWriter.DefaultWords(), tokenizerDir);
        var config = TinyPipelineWriter.SmallTextConfig(ClipTokenizer.FromFolder(tokenizerDir), o.TextHiddenSize, o.TextLayers, 4);
        using (var text = new ClipTextModel(config, new Generator((ulong)(o.Seed + 10))))
        {
            SeededInitializer.ApplyNormal(text, o.Seed + 10);
            text.SavePretrained(Path.Combine(temp, "text_encoder"));
        }
        TinySd3Writer.WriteT5(o, Path.Combine(temp, "tokenizer_2"), Path.Combine(temp, "text_encoder_2"));
        using (var transformer = new FluxTransformer2DModel(TransformerConfig(o), new Generator((ulong)o.Seed)))
        {
            transformer.SavePretrained(Path.Combine(temp, "transformer"));
        }
        using (var vae = new AutoencoderKL(TinySd3Writer.VaeConfig(o, scalingFactor: 0.3611, shiftFactor: 0.1159)))
        {
            SeededInitializer.Apply(vae, o.Seed + 1);
            vae.SavePretrained(Path.Combine(temp, "vae"));
        }
        var schedulerDir = Path.Combine(temp, "scheduler");
        Directory.CreateDirectory(schedulerDir);
        File.WriteAllText(Path.Combine(schedulerDir, "scheduler_config.json"), FlowMatchEulerDiscreteSchedulerConfig.Flux().ToJson());
        FluxLayout.WriteIndex(temp);
    }
}
