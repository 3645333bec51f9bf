using Ddpo.Pipelines;

namespace Ddpo.Pretraining;

/// <summary>
/// The architecture of the built-in model: a pixel-space (no VAE) 32x32 RGB UNet2DConditionModel
/// with cross-attention at 16x16 and 8x8, and a 2-layer CLIP text encoder over a word-level
/// vocabulary of the paper's prompt words. Small enough to sample and train on a 2-core CPU.
/// </summary>
internal static class BuiltinArchitecture
{
    /// <summary>The sizes passed to <see cref="TinyPipelineWriter"/>.</summary>
    public static TinyPipelineOptions Options { get; } = new()
    {
        UnetChannels = [32, 64, 64],
        LayersPerBlock = 1,
        AttentionHeads = 4,
        NormGroups = 8,
        SampleSize = 32,
        WithVae = false,
        TextHiddenSize = 64,
        TextLayers = 2,
        Seed = 0,
    };
}
