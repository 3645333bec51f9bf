using Ddpo.Pipelines;
using static TorchSharp.torch;

namespace Ddpo.Cli.Commands;

/// <summary>Turns a <c>--model</c> value (a folder, <c>builtin</c> or nothing) into a loaded pipeline.</summary>
internal static class ModelResolver
{
    /// <summary>The folder of <paramref name="model"/>: the built-in model when null/empty or "builtin".</summary>
    public static string Folder(string? model) => DdpoRun.ModelFolder(model ?? "");

    /// <summary>Loads the pipeline on the device in the dtype.</summary>
    public static TextToImagePipeline LoadPipeline(string? model, Device device, ScalarType dtype) =>
        TextToImagePipeline.FromPretrained(Folder(model), device, dtype);
}
