using Ddpo.Models.Clip;
using Ddpo.Models.T5;
using Ddpo.Models.Transformers;
using Ddpo.Models.Vae;
using Ddpo.Policies;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// FLUX.1 (diffusers' <c>FluxPipeline</c>): a <c>FluxTransformer2DModel</c> predicting the flow velocity of 2x2-packed
/// latents from T5 states and CLIP's pooled embedding, guided by its guidance embedding (FLUX.1-dev; no
/// classifier-free pass), a <c>FlowMatchEulerDiscreteScheduler</c> with dynamic shifting (mu from the image's token
/// count), and the 16-channel VAE with FLUX's shift and scale. Sampling with an SDE gives trajectories with exact
/// per-step log-probabilities; with noise level 0 it is diffusers' Euler ODE.
/// </summary>
public sealed class FluxPipeline : ITextToImagePipeline
{
    /// <summary>diffusers' default <c>max_sequence_length</c> of FluxPipeline's T5 prompt (FLUX.1-schnell uses 256).</summary>
    public const int DefaultMaxSequenceLength = 512;

    internal FluxTransformer2DModel Transformer { get; }
    internal AutoencoderKL Vae { get; }
    internal ClipTextModel TextEncoder { get; }
    internal T5EncoderModel TextEncoder2 { get; }
    internal ClipTokenizer Tokenizer { get; }
    internal T5Tokenizer Tokenizer2 { get; }
    internal FlowMatchEulerDiscreteScheduler Scheduler { get; }

    /// <inheritdoc />
    public Device Device { get; }

    /// <inheritdoc />
    public ScalarType DType { get; }

    /// <inheritdoc />
    public string? Source { get; init; }

    /// <summary>Tokens of the T5 prompt (diffusers' <c>max_sequence_length</c>, at most 512).</summary>
    public int MaxSequenceLength
    {
        get => _maxSequenceLength;
        set => _maxSequenceLength = value is >= 1 and <= 512 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "max_sequence_length must be in 1..512");
    }

    private int _maxSequenceLength = DefaultMaxSequenceLength;

    internal IDiffusionPolicy Policy { get; }

    IDiffusionPolicy ITextToImagePipeline.Policy => Policy;

    /// <summary>Assembles a pipeline from loaded parts (already on <paramref name="device"/> in <paramref name="dtype"/>).</summary>
    internal FluxPipeline(FluxTransformer2DModel transformer, AutoencoderKL vae, ClipTextModel textEncoder, T5EncoderModel textEncoder2,
        ClipTokenizer tokenizer, T5Tokenizer tokenizer2, FlowMatchEulerDiscreteScheduler scheduler, Device device, ScalarType dtype)
    {
        if (!scheduler.Config.UseDynamicShifting)
        {
            throw new ArgumentException("a FLUX scheduler shifts dynamically (use_dynamic_shifting = true in scheduler_config.json)");
        }
        Transformer = transformer;
        Vae = vae;
        TextEncoder = textEncoder;
        TextEncoder2 = textEncoder2;
        Tokenizer = tokenizer;
        Tokenizer2 = tokenizer2;
        Scheduler = scheduler;
        Device = device;
        DType = dtype;
        transformer.eval();
        foreach (nn.Module frozen in new nn.Module[] { vae, textEncoder, textEncoder2 })
        {
            frozen.eval();
            foreach (var p in frozen.parameters()) p.requires_grad = false;
        }
        Policy = new FluxPolicy(this);
    }

    /// <summary>
    /// Loads a diffusers <c>FluxPipeline</c> folder: <c>transformer/</c>, <c>vae/</c>, <c>text_encoder/</c> (CLIP),
    /// <c>text_encoder_2/</c> (T5), <c>tokenizer/</c>, <c>tokenizer_2/</c>, <c>scheduler/</c>. Any problem is an error
    /// naming the file or folder.
    /// </summary>
    public static FluxPipeline FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var layout = FluxLayout.Read(directory);
        var dev = device ?? CPU;
        var parts = new List<IDisposable>();
        T Keep<T>(T part) where T : IDisposable
        {
            parts.Add(part);
            return part;
        }
        try
        {
            var transformer = Keep(FluxTransformer2DModel.FromPretrained(layout.Transformer, dtype, dev));
            var vae = Keep(AutoencoderKL.FromPretrained(layout.Vae, dtype, dev));
            var text = Keep(ClipTextModel.FromPretrained(layout.TextEncoder, dtype, dev));
            var text2 = Keep(T5EncoderModel.FromPretrained(layout.TextEncoder2, dtype, dev));
            var scheduler = new FlowMatchEulerDiscreteScheduler(FlowMatchEulerDiscreteSchedulerConfig.Load(layout.SchedulerConfig));
            return new FluxPipeline(transformer, vae, text, text2, ClipTokenizer.FromFolder(layout.Tokenizer),
                T5Tokenizer.FromFolder(layout.Tokenizer2), scheduler, dev, dtype) { Source = directory };
        }
        catch
        {
            foreach (var part in parts) part.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public string Family => Policy.Family;

    /// <summary>Pixels per latent cell: 2^(VAE levels - 1) (8 for FLUX); the image side must be a multiple of twice this.</summary>
    public int VaeScaleFactor => 1 << (Vae.Config.BlockOutChannels.Length - 1);

    /// <summary>
    /// The default image side: the VAE's <c>sample_size</c> (1024 for FLUX.1, what diffusers' <c>default_sample_size</c>
    /// 128 x 8 gives; a tiny model's VAE says its own).
    /// </summary>
    public int DefaultImageSize => Vae.Config.SampleSize;

    /// <summary>
    /// diffusers' <c>encode_prompt</c> (no gradient): T5's last hidden states of <see cref="MaxSequenceLength"/> tokens
    /// (no attention mask, as the pipeline calls it) and CLIP's pooled output (77 tokens). Returns ([B, T, D], [B, P]).
    /// </summary>
    public (Tensor PromptEmbeds, Tensor PooledPromptEmbeds) EncodePrompt(IReadOnlyList<string> prompts)
    {
        if (prompts.Count == 0) throw new ArgumentException("at least one prompt is needed", nameof(prompts));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (_, pooled) = TextEncoder.Encode(Tokenizer.EncodeBatch(prompts, ClipTokenizer.DefaultMaxLength).to(Device));
        var (ids, _) = Tokenizer2.EncodeBatch(prompts, MaxSequenceLength);
        var embeds = TextEncoder2.forward(ids.to(Device));
        return (embeds.to(ScalarType.Float32).MoveToOuterDisposeScope(), pooled.to(ScalarType.Float32).MoveToOuterDisposeScope());
    }

    /// <inheritdoc />
    public SamplingResult Sample(IReadOnlyList<string> prompts, SamplingOptions options, Generator? generator = null,
        string negativePrompt = "", IProgress<int>? progress = null)
    {
        options.Validate();
        using var scope = NewDisposeScope();
        var images = PolicySampling.Images(Policy, prompts, options, generator, progress, negativePrompt);
        return new SamplingResult(images.MoveToOuterDisposeScope(), null);
    }

    /// <summary>
    /// Latents to images [B, 3, H, W] in [0, 1] on the device, float32 (float64 for a float64 pipeline), with the graph
    /// kept when gradients are enabled (reward backpropagation).
    /// </summary>
    public Tensor DecodeOnDevice(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var pixels = Vae.Decode((latents / Vae.ScalingFactor + Vae.ShiftFactor).to(DType));
        var outType = pixels.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        return (pixels.to(outType) / 2 + 0.5).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Final (unpacked) latents to images [B, 3, H, W] float32 in [0, 1] on the CPU: <c>latents / scaling_factor + shift_factor</c> decoded.</summary>
    public Tensor DecodeToImages(Tensor latents)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var pixels = Vae.Decode((latents / Vae.ScalingFactor + Vae.ShiftFactor).to(DType));
        return HostCopy.ToHost((pixels.to(ScalarType.Float32) / 2 + 0.5).clamp(0, 1)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Transformer.Dispose();
        Vae.Dispose();
        TextEncoder.Dispose();
        TextEncoder2.Dispose();
        Scheduler.Dispose();
    }
}
