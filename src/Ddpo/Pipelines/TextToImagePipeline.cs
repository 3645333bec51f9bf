using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
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
public sealed class TextToImagePipeline : IDisposable
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
        string negativePrompt = "", IProgress<int>? progress = null) =>
        Sample(prompts, options, generator, negativePrompt, progress, embeddings: null);

    /// <summary>
    /// Samples one image per prompt. Initial noise is drawn on the CPU from <paramref name="generator"/>,
    /// so a seed gives the same images on every device. <paramref name="progress"/> receives the
    /// number of finished steps. With <paramref name="embeddings"/> the prompt and negative-prompt embeddings come
    /// from (and go into) that cache instead of a fresh text-encoder call (see <see cref="PromptEmbeddingCache"/>).
    /// The denoising loop never waits for the device: the timesteps and every step's noise are on it before the loop.
    /// </summary>
    internal SamplingResult Sample(IReadOnlyList<string> prompts, SamplingOptions options, Generator? generator,
        string negativePrompt, IProgress<int>? progress, PromptEmbeddingCache? embeddings)
    {
        options.Validate();
        if (prompts.Count == 0) throw new ArgumentException("at least one prompt is needed");
        int height = options.Height ?? DefaultImageSize, width = options.Width ?? DefaultImageSize;
        if (height % VaeScaleFactor != 0 || width % VaeScaleFactor != 0)
        {
            throw new ArgumentException($"height and width must be multiples of {VaeScaleFactor} for this model, got {height}x{width}");
        }
        using var outer = NewDisposeScope();
        using var noGrad = no_grad();
        int b = prompts.Count;
        var promptEmbeds = embeddings?.Get(prompts) ?? EncodePrompts(prompts);
        Tensor? negativeEmbeds = null;
        if (options.UsesGuidance)
        {
            using var one = embeddings?.Get([negativePrompt]) ?? EncodePrompts([negativePrompt]);
            negativeEmbeds = one.expand(b, -1, -1).contiguous();
        }
        Scheduler.SetTimesteps(options.NumSteps);
        var shape = new long[] { b, LatentChannels, height / VaeScaleFactor, width / VaeScaleFactor };
        var latents = HostCopy.ToDevice(randn(shape, dtype: ScalarType.Float32, generator: generator), Device);
        // What the loop needs from the host goes to the device before it, without waiting: the timesteps (a scalar
        // tensor made per step is a blocking host-to-device copy, i.e. a GPU synchronisation per step) and each
        // step's noise, drawn on the CPU in the same order as before (the same images for a seed) and queued from
        // pinned memory. The loop itself only enqueues GPU work.
        var timesteps = HostCopy.ToDevice(tensor(Scheduler.Timesteps, dtype: ScalarType.Int64), Device);
        var stepNoise = Scheduler.Timesteps
            .Select(_ => HostCopy.ToDevice(randn(shape, dtype: ScalarType.Float32, generator: generator), Device)).ToList();
        var recorded = options.RecordTrajectory ? new List<Tensor> { latents } : null;
        var logProbs = options.RecordTrajectory ? new List<Tensor>() : null;
        for (int i = 0; i < Scheduler.Timesteps.Length; i++)
        {
            using var step = NewDisposeScope();
            var t = timesteps[i];
            var eps = PredictNoise(latents, t, promptEmbeds, negativeEmbeds, options.GuidanceScale);
            var r = Scheduler.Step(eps, t, latents, options.EtaAt(i), noise: stepNoise[i], finalStep: options.FinalStep);
            latents = r.PrevSample.MoveToOuterDisposeScope();
            if (recorded is not null)
            {
                recorded.Add(latents);
                logProbs!.Add(r.LogProb.MoveToOuterDisposeScope());
            }
            progress?.Report(i + 1);
        }
        var images = DecodeToImages(latents);
        Trajectory? trajectory = null;
        if (recorded is not null)
        {
            trajectory = new Trajectory(prompts.ToArray(), promptEmbeds, negativeEmbeds, Scheduler.Timesteps.ToArray(),
                stack(recorded, 1), stack(logProbs!, 1));
            trajectory.PromptEmbeds.MoveToOuterDisposeScope();
            trajectory.NegativeEmbeds?.MoveToOuterDisposeScope();
            trajectory.Latents.MoveToOuterDisposeScope();
            trajectory.LogProbs.MoveToOuterDisposeScope();
        }
        images.MoveToOuterDisposeScope();
        return new SamplingResult(images, trajectory);
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
