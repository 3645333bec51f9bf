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

    /// <summary>
    /// Loads <paramref name="directory"/>: a <c>StableDiffusion3Pipeline</c> folder as <see cref="StableDiffusion3Pipeline"/>,
    /// any other as a Stable Diffusion 1.x/2.x folder (<see cref="TextToImagePipeline"/>, which checks its components),
    /// except the families not loaded yet (FLUX, SDXL), which are an error naming the class. <paramref name="maxSequenceLength"/>
    /// is the T5 prompt length of families with T5 (<see cref="StableDiffusion3Pipeline.MaxSequenceLength"/>).
    /// </summary>
    public static ITextToImagePipeline FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32,
        int maxSequenceLength = StableDiffusion3Pipeline.DefaultMaxSequenceLength) =>
        ClassName(directory) switch
        {
            StableDiffusion3 => WithSequenceLength(StableDiffusion3Pipeline.FromPretrained(directory, device, dtype), maxSequenceLength),
            var other when other is "FluxPipeline" or "StableDiffusionXLPipeline" => throw new ModelLoadException(
                $"{Path.Combine(directory, "model_index.json")}: _class_name '{other}' is not a pipeline this version loads (it loads StableDiffusionPipeline and {StableDiffusion3})"),
            _ => TextToImagePipeline.FromPretrained(directory, device, dtype),
        };

    private static StableDiffusion3Pipeline WithSequenceLength(StableDiffusion3Pipeline pipeline, int tokens)
    {
        pipeline.MaxSequenceLength = tokens;
        return pipeline;
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
