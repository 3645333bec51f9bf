using Ddpo.Policies;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// A loaded text-to-image model of any family (<see cref="TextToImagePipeline"/> for Stable Diffusion 1.x/2.x,
/// <see cref="StableDiffusion3Pipeline"/> for SD3/3.5): what a user samples with. <see cref="PipelineLoader"/> loads
/// the right one from a diffusers folder.
/// </summary>
public interface ITextToImagePipeline : IDisposable
{
    /// <summary>The model family, for messages (e.g. "Stable Diffusion 3 (flow matching)").</summary>
    string Family { get; }

    /// <summary>Where the models run.</summary>
    Device Device { get; }

    /// <summary>The dtype of the frozen weights.</summary>
    ScalarType DType { get; }

    /// <summary>The folder the pipeline was loaded from (null when assembled in code).</summary>
    string? Source { get; }

    /// <summary>The image side in pixels the denoiser was configured for.</summary>
    int DefaultImageSize { get; }

    /// <summary>
    /// Samples one image per prompt. Initial and per-step noise are drawn on the CPU from <paramref name="generator"/>,
    /// so a seed gives the same images on every device. <paramref name="progress"/> receives the number of finished steps.
    /// </summary>
    SamplingResult Sample(IReadOnlyList<string> prompts, SamplingOptions options, Generator? generator = null,
        string negativePrompt = "", IProgress<int>? progress = null);

    /// <summary>The pipeline as a policy (what training and evaluation use).</summary>
    internal IDiffusionPolicy Policy { get; }
}
