using Ddpo.Pipelines;
using static TorchSharp.torch;

namespace Ddpo.Cli.Commands;

/// <summary>Turns a <c>--model</c> value (a folder, <c>builtin</c> or nothing) into a loaded pipeline.</summary>
internal static class ModelResolver
{
    /// <summary>The folder of <paramref name="model"/>: the built-in model when null/empty or "builtin".</summary>
    public static string Folder(string? model) => DdpoRun.ModelFolder(model ?? "");

    /// <summary>Loads the pipeline (any family) on the device in the dtype.</summary>
    public static ITextToImagePipeline LoadPipeline(string? model, Device device, ScalarType dtype) =>
        PipelineLoader.FromPretrained(Folder(model), device, dtype);

    /// <summary>Loads a Stable Diffusion 1.x/2.x pipeline for a command that measures only that family (<paramref name="command"/>, for the message).</summary>
    public static TextToImagePipeline LoadStableDiffusion(string? model, Device device, ScalarType dtype, string command)
    {
        var folder = Folder(model);
        if (PipelineLoader.ClassName(folder) is PipelineLoader.StableDiffusion3 or PipelineLoader.Flux or PipelineLoader.StableDiffusionXL)
        {
            throw new ArgumentException($"--model: {folder} is a {PipelineLoader.ClassName(folder)}; 'ddpo {command}' measures Stable Diffusion 1.x/2.x pipelines only");
        }
        return TextToImagePipeline.FromPretrained(folder, device, dtype);
    }
}
