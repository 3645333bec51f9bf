using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>Loads a diffusers pipeline folder of any supported family, chosen by <c>model_index.json</c>'s <c>_class_name</c>.</summary>
public static class PipelineLoader
{
    /// <summary>The <c>_class_name</c> of Stable Diffusion 3 / 3.5 pipelines.</summary>
    public const string StableDiffusion3 = "StableDiffusion3Pipeline";

    /// <summary>The <c>_class_name</c> of Stable Diffusion XL pipelines.</summary>
    public const string StableDiffusionXL = "StableDiffusionXLPipeline";

    /// <summary>The <c>_class_name</c> of FLUX.1 pipelines.</summary>
    public const string Flux = "FluxPipeline";

    /// <summary>
    /// Loads <paramref name="directory"/>: a <c>StableDiffusion3Pipeline</c> folder as <see cref="StableDiffusion3Pipeline"/>,
    /// a <c>StableDiffusionXLPipeline</c> one as <see cref="StableDiffusionXLPipeline"/>, a <c>FluxPipeline</c> one as
    /// <see cref="FluxPipeline"/>, any other as a Stable Diffusion 1.x/2.x folder (<see cref="TextToImagePipeline"/>,
    /// which checks its components). <paramref name="maxSequenceLength"/> is the T5 prompt length of families with T5; 0 keeps the
    /// family's default (<see cref="StableDiffusion3Pipeline.DefaultMaxSequenceLength"/>, <see cref="FluxPipeline.DefaultMaxSequenceLength"/>).
    /// </summary>
    public static ITextToImagePipeline FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32,
        int maxSequenceLength = 0)
    {
        switch (ClassName(directory))
        {
            case StableDiffusion3:
                var sd3 = StableDiffusion3Pipeline.FromPretrained(directory, device, dtype);
                if (maxSequenceLength > 0) sd3.MaxSequenceLength = maxSequenceLength;
                return sd3;
            case Flux:
                var flux = FluxPipeline.FromPretrained(directory, device, dtype);
                if (maxSequenceLength > 0) flux.MaxSequenceLength = maxSequenceLength;
                return flux;
            case StableDiffusionXL:
                return StableDiffusionXLPipeline.FromPretrained(directory, device, dtype);
            default:
                return TextToImagePipeline.FromPretrained(directory, device, dtype);
        }
    }

    /// <summary>The <c>_class_name</c> of a pipeline folder's <c>model_index.json</c>, or null where the file or the key is absent.</summary>
    public static string? ClassName(string directory)
    {
        var index = Path.Combine(directory, "model_index.json");
        if (!File.Exists(index)) return null;
        try
        {
            return (StrictJson.Parse(Utf8Text.ReadFile(index, message => new ModelLoadException(message))) as JsonObject)?["_class_name"]?.GetValue<string>();
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            throw new ModelLoadException($"{index}: not valid JSON, or _class_name is not a string ({e.Message})", e);
        }
    }
}
