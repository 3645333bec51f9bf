using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Pipelines;

namespace Ddpo.Diagnostics;

/// <summary>
/// The model sizes and batch sizes the GPU check measures. <see cref="Full"/> is Stable Diffusion 1.4 (the issue's
/// configs, mirrored by <c>tools/gpu/torch_bench.py</c>); <see cref="Smoke"/> is a tiny model that runs each row in
/// seconds on a CPU, so that the check itself is tested without a GPU.
/// </summary>
internal sealed record GpuCheckSizes
{
    /// <summary>"full" or "smoke".</summary>
    public required string Name { get; init; }
    /// <summary>The UNet (random weights).</summary>
    public required UNet2DConditionConfig Unet { get; init; }
    /// <summary>The VAE (random weights).</summary>
    public required AutoencoderKLConfig Vae { get; init; }
    /// <summary>Width of the text encoder (CLIP ViT-L/14's text tower for SD 1.x: 768).</summary>
    public required int TextHidden { get; init; }
    /// <summary>Text encoder layers.</summary>
    public required int TextLayers { get; init; }
    /// <summary>Text encoder heads.</summary>
    public required int TextHeads { get; init; }
    /// <summary>UNet batch of the forward rows (prompts x 2 for guidance).</summary>
    public required int ForwardBatch { get; init; }
    /// <summary>UNet batches of the LoRA training-step rows.</summary>
    public required int[] TrainBatches { get; init; }
    /// <summary>LoRA rank of the training rows and the epoch.</summary>
    public int LoraRank { get; init; } = 4;
    /// <summary>Images decoded by the VAE row.</summary>
    public required int DecodeBatch { get; init; }
    /// <summary>Images of the sampling row.</summary>
    public required int SampleImages { get; init; }
    /// <summary>DDIM steps of the sampling row and the epoch.</summary>
    public required int Steps { get; init; }
    /// <summary>Guidance scale of the sampling row and the epoch.</summary>
    public double Guidance { get; init; } = 5.0;
    /// <summary>Samples of the reduced DDPO epoch.</summary>
    public required int EpochSamples { get; init; }
    /// <summary>Samples per sampling batch in the epoch.</summary>
    public required int EpochSampleBatch { get; init; }
    /// <summary>Samples per training micro-batch in the epoch (the UNet sees twice as many with guidance).</summary>
    public required int EpochTrainBatch { get; init; }
    /// <summary>Samples per optimizer step in the epoch.</summary>
    public required int EpochTotalBatch { get; init; }
    /// <summary>Batch of the fp16 gradient-health check.</summary>
    public required int HealthBatch { get; init; }
    /// <summary>Untimed calls before timing.</summary>
    public required int Warmup { get; init; }
    /// <summary>Timed calls (the median is reported).</summary>
    public required int Iterations { get; init; }

    /// <summary>Latent size in pixels per side (the UNet's sample size times the VAE's factor).</summary>
    public int ImageSize => (Unet.SampleSize ?? 64) * (1 << (Vae.BlockOutChannels.Length - 1));

    /// <summary>Stable Diffusion 1.4 at the batch sizes.</summary>
    public static GpuCheckSizes Full() => new()
    {
        Name = "full",
        Unet = UNet2DConditionConfig.Sd14(),
        Vae = new AutoencoderKLConfig
        {
            BlockOutChannels = [128, 256, 512, 512],
            DownBlockTypes = Enumerable.Repeat("DownEncoderBlock2D", 4).ToArray(),
            UpBlockTypes = Enumerable.Repeat("UpDecoderBlock2D", 4).ToArray(),
            LayersPerBlock = 2,
            SampleSize = 512,
        },
        TextHidden = 768, TextLayers = 12, TextHeads = 12,
        ForwardBatch = 16, TrainBatches = [8, 16], DecodeBatch = 8, SampleImages = 8, Steps = 50,
        EpochSamples = 32, EpochSampleBatch = 8, EpochTrainBatch = 8, EpochTotalBatch = 16, HealthBatch = 2,
        Warmup = 2, Iterations = 5,
    };

    /// <summary>A tiny latent model: every row in seconds on a CPU.</summary>
    public static GpuCheckSizes Smoke()
    {
        var tiny = new TinyPipelineOptions { UnetChannels = [16, 32], SampleSize = 8, TextHiddenSize = 16, VaeChannels = [8, 16], AttentionHeads = 2 };
        return new()
        {
            Name = "smoke",
            Unet = TinyPipelineWriter.UnetConfig(tiny),
            Vae = TinyPipelineWriter.VaeConfig(tiny)!,
            TextHidden = 16, TextLayers = 1, TextHeads = 2,
            ForwardBatch = 4, TrainBatches = [2, 4], DecodeBatch = 2, SampleImages = 2, Steps = 4,
            EpochSamples = 4, EpochSampleBatch = 2, EpochTrainBatch = 2, EpochTotalBatch = 4, HealthBatch = 2,
            Warmup = 1, Iterations = 2,
        };
    }
}
