using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Policies;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// Text-to-image sampling with classifier-free guidance and a DDIM scheduler that returns exact
/// per-step log-probabilities, so that sampling yields DDPO trajectories. Loads a diffusers
/// pipeline folder (Stable Diffusion 1.x/2.x or our small models; a folder without <c>vae/</c>
/// is a pixel-space model). Frozen weights run in <see cref="DType"/>; latents and the scheduler
/// math stay float32.
/// </summary>
public sealed class TextToImagePipeline : ITextToImagePipeline
{
    /// <summary>The denoiser (the policy).</summary>
    internal UNet2DConditionModel Unet { get; }
    /// <summary>The latent autoencoder, or null for a pixel-space model.</summary>
    internal AutoencoderKL? Vae { get; }
    /// <summary>The frozen text encoder.</summary>
    internal ClipTextModel TextEncoder { get; }
    /// <summary>The prompt tokenizer.</summary>
    internal ClipTokenizer Tokenizer { get; }
    /// <summary>DDIM with log-probabilities.</summary>
    internal DdimScheduler Scheduler { get; }
    /// <summary>Where the models run.</summary>
    public Device Device { get; }
    /// <summary>The dtype of the frozen weights.</summary>
    public ScalarType DType { get; }
    /// <summary>The pipeline as a policy (what training and evaluation use).</summary>
    internal IDiffusionPolicy Policy { get; }

    IDiffusionPolicy ITextToImagePipeline.Policy => Policy;

    /// <inheritdoc />
    public string Family => Policy.Family;
    /// <summary>The folder the pipeline was loaded from (null when assembled in code).</summary>
    public string? Source { get; init; }

    /// <summary>Assembles a pipeline from loaded parts (already on <paramref name="device"/> in <paramref name="dtype"/>).</summary>
    internal TextToImagePipeline(UNet2DConditionModel unet, AutoencoderKL? vae, ClipTextModel textEncoder,
        ClipTokenizer tokenizer, DdimScheduler scheduler, Device device, ScalarType dtype)
    {
        Unet = unet;
        Vae = vae;
        TextEncoder = textEncoder;
        Tokenizer = tokenizer;
        Scheduler = scheduler;
        Device = device;
        DType = dtype;
        Policy = new StableDiffusionPolicy(this);
        Unet.eval();
        TextEncoder.eval();
        Vae?.eval();
        foreach (var p in TextEncoder.parameters()) p.requires_grad = false;
        if (Vae is not null) foreach (var p in Vae.parameters()) p.requires_grad = false;
    }

    /// <summary>
    /// Loads <c>model_index.json</c>, <c>unet/</c>, <c>vae/</c> (optional), <c>text_encoder/</c>,
    /// <c>tokenizer/</c> and <c>scheduler/</c>; any problem is an error naming the file or folder.
    /// </summary>
    public static TextToImagePipeline FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var layout = PipelineLayout.Read(directory);
        var dev = device ?? CPU;
        var unet = UNet2DConditionModel.FromPretrained(layout.Unet, dtype, dev);
        var vae = layout.Vae is null ? null : AutoencoderKL.FromPretrained(layout.Vae, dtype, dev);
        var text = ClipTextModel.FromPretrained(layout.TextEncoder, dtype, dev);
        var tokenizer = ClipTokenizer.FromFolder(layout.Tokenizer);
        var scheduler = new DdimScheduler(layout.SchedulerConfig is null
            ? DdimSchedulerConfig.StableDiffusion()
            : DdimSchedulerConfig.Load(layout.SchedulerConfig));
        return new TextToImagePipeline(unet, vae, text, tokenizer, scheduler, dev, dtype) { Source = directory };
    }

    /// <summary>Pixels per latent cell (8 for Stable Diffusion, 1 in pixel space).</summary>
    public int VaeScaleFactor => Vae is null ? 1 : 1 << (Vae.Config.BlockOutChannels.Length - 1);

    /// <summary>The image size the UNet was configured for, in pixels.</summary>
    public int DefaultImageSize => (Unet.Config.SampleSize ?? 64) * VaeScaleFactor;

    /// <summary>Channels of the diffusion space (4 latent channels for SD, 3 in pixel space).</summary>
    public int LatentChannels => Unet.Config.InChannels;

    /// <summary>Encodes prompts to text-encoder hidden states [B, L, D] on <see cref="Device"/> (no gradient).</summary>
    public Tensor EncodePrompts(IReadOnlyList<string> prompts)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = Tokenizer.EncodeBatch(prompts, ClipTokenizer.DefaultMaxLength).to(Device);
        var (hidden, _) = TextEncoder.Encode(ids);
        return hidden.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The guided noise prediction eps_neg + g (eps_pos - eps_neg), running both halves as one batch
    /// [negative; positive]. With <paramref name="negativeEmbeds"/> null (or g = 1) only the
    /// conditional pass runs. Output is float32; gradients flow when enabled (training).
    /// </summary>
    public Tensor PredictNoise(Tensor latents, Tensor timestep, Tensor promptEmbeds, Tensor? negativeEmbeds, double guidanceScale) =>
        GuidedNoisePredictor.Predict(Unet, latents, timestep, promptEmbeds, negativeEmbeds, guidanceScale, DType);

    /// <summary>
    /// Samples one image per prompt. Initial noise is drawn on the CPU from <paramref name="generator"/>, so a seed gives
    /// the same images on every device. <paramref name="progress"/> receives the number of finished steps.
    /// </summary>
    public SamplingResult Sample(IReadOnlyList<string> prompts, SamplingOptions options, Generator? generator = null,
        string negativePrompt = "", IProgress<int>? progress = null)
    {
        options.Validate();
        using var outer = NewDisposeScope();
        using var noGrad = no_grad();
        var (condition, unconditional) = PolicySampling.Conditions(Policy, prompts, options, negativePrompt);
        using (condition)
        using (unconditional)
        using (var rollout = Policy.Sample(condition, unconditional, options, generator, progress))
        {
            var images = DecodeToImages(rollout.Final).MoveToOuterDisposeScope();
            Trajectory? trajectory = null;
            if (rollout.Latents is not null)
            {
                trajectory = new Trajectory(prompts.ToArray(), condition[StableDiffusionPolicy.PromptEmbeds].alias().MoveToOuterDisposeScope(),
                    unconditional?[StableDiffusionPolicy.PromptEmbeds].alias().MoveToOuterDisposeScope(), rollout.Times.cpu().data<long>().ToArray(),
                    rollout.Latents.alias().MoveToOuterDisposeScope(), rollout.LogProbs!.alias().MoveToOuterDisposeScope());
            }
            return new SamplingResult(images, trajectory);
        }
    }

    /// <summary>
    /// Latents (or pixels) to images [B, 3, H, W] in [0, 1] on the device, float32 (float64 for a float64 pipeline),
    /// with the graph kept when gradients are enabled (reward backpropagation).
    /// </summary>
    public Tensor DecodeOnDevice(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var pixels = Vae is null ? latents : Vae.Decode((latents / Vae.ScalingFactor).to(DType));
        var outType = pixels.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        return (pixels.to(outType) / 2 + 0.5).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Latents (or pixels) to images [B, 3, H, W] float32 in [0, 1] on the CPU.</summary>
    public Tensor DecodeToImages(Tensor latents)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var pixels = Vae is null ? latents : Vae.Decode((latents / Vae.ScalingFactor).to(DType));
        // Through pinned host memory on CUDA: the images go to the rewards, which read them on the host.
        return HostCopy.ToHost((pixels.to(ScalarType.Float32) / 2 + 0.5).clamp(0, 1)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Unet.Dispose();
        Vae?.Dispose();
        TextEncoder.Dispose();
        Scheduler.Dispose();
    }
}
