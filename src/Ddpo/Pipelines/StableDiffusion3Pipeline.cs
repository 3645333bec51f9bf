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
/// Stable Diffusion 3 / 3.5 (diffusers' <c>StableDiffusion3Pipeline</c>): an <c>SD3Transformer2DModel</c> predicting the
/// flow-matching velocity from two CLIP text encoders (with projection) and T5, a <c>FlowMatchEulerDiscreteScheduler</c>,
/// and the 16-channel VAE with its shift and scale. Sampling with an SDE (Flow-GRPO's Flow-SDE by default) gives
/// trajectories with exact per-step log-probabilities; with noise level 0 it is diffusers' Euler ODE. Frozen weights
/// run in <see cref="DType"/>; latents and the sampler's math stay float32.
/// </summary>
public sealed class StableDiffusion3Pipeline : ITextToImagePipeline
{
    /// <summary>diffusers' default <c>max_sequence_length</c> of the T5 prompt (Flow-GRPO passes 128).</summary>
    public const int DefaultMaxSequenceLength = 256;

    internal SD3Transformer2DModel Transformer { get; }
    internal AutoencoderKL Vae { get; }
    internal ClipTextModelWithProjection TextEncoder { get; }
    internal ClipTextModelWithProjection TextEncoder2 { get; }
    internal T5EncoderModel? TextEncoder3 { get; }
    internal ClipTokenizer Tokenizer { get; }
    internal ClipTokenizer Tokenizer2 { get; }
    internal T5Tokenizer? Tokenizer3 { get; }
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

    /// <summary>The pipeline as a policy (what training and evaluation use).</summary>
    internal IDiffusionPolicy Policy { get; }

    IDiffusionPolicy ITextToImagePipeline.Policy => Policy;

    /// <summary>Assembles a pipeline from loaded parts (already on <paramref name="device"/> in <paramref name="dtype"/>).</summary>
    internal StableDiffusion3Pipeline(SD3Transformer2DModel transformer, AutoencoderKL vae,
        ClipTextModelWithProjection textEncoder, ClipTextModelWithProjection textEncoder2, T5EncoderModel? textEncoder3,
        ClipTokenizer tokenizer, ClipTokenizer tokenizer2, T5Tokenizer? tokenizer3, FlowMatchEulerDiscreteScheduler scheduler,
        Device device, ScalarType dtype)
    {
        if ((textEncoder3 is null) != (tokenizer3 is null))
        {
            throw new ArgumentException("text_encoder_3 and tokenizer_3 come together: give both or neither");
        }
        Transformer = transformer;
        Vae = vae;
        TextEncoder = textEncoder;
        TextEncoder2 = textEncoder2;
        TextEncoder3 = textEncoder3;
        Tokenizer = tokenizer;
        Tokenizer2 = tokenizer2;
        Tokenizer3 = tokenizer3;
        Scheduler = scheduler;
        Device = device;
        DType = dtype;
        transformer.eval();
        foreach (nn.Module frozen in new nn.Module?[] { vae, textEncoder, textEncoder2, textEncoder3 }.OfType<nn.Module>())
        {
            frozen.eval();
            foreach (var p in frozen.parameters()) p.requires_grad = false;
        }
        Policy = new StableDiffusion3Policy(this);
    }

    /// <summary>
    /// Loads a diffusers <c>StableDiffusion3Pipeline</c> folder: <c>transformer/</c>, <c>vae/</c>, <c>text_encoder/</c>,
    /// <c>text_encoder_2/</c>, <c>tokenizer/</c>, <c>tokenizer_2/</c>, <c>scheduler/</c> and, unless model_index.json
    /// lists them as null (SD3 without T5), <c>text_encoder_3/</c> and <c>tokenizer_3/</c>. Any problem is an error
    /// naming the file or folder.
    /// </summary>
    public static StableDiffusion3Pipeline FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var layout = StableDiffusion3Layout.Read(directory);
        var dev = device ?? CPU;
        var parts = new List<IDisposable>();
        T Keep<T>(T part) where T : IDisposable
        {
            parts.Add(part);
            return part;
        }
        try
        {
            var transformer = Keep(SD3Transformer2DModel.FromPretrained(layout.Transformer, dtype, dev));
            var vae = Keep(AutoencoderKL.FromPretrained(layout.Vae, dtype, dev));
            var text = Keep(ClipTextModelWithProjection.FromPretrained(layout.TextEncoder, dtype, dev));
            var text2 = Keep(ClipTextModelWithProjection.FromPretrained(layout.TextEncoder2, dtype, dev));
            var text3 = layout.TextEncoder3 is null ? null : Keep(T5EncoderModel.FromPretrained(layout.TextEncoder3, dtype, dev));
            var tokenizer3 = layout.Tokenizer3 is null ? null : T5Tokenizer.FromFolder(layout.Tokenizer3);
            var scheduler = new FlowMatchEulerDiscreteScheduler(FlowMatchEulerDiscreteSchedulerConfig.Load(layout.SchedulerConfig));
            return new StableDiffusion3Pipeline(transformer, vae, text, text2, text3,
                ClipTokenizer.FromFolder(layout.Tokenizer), ClipTokenizer.FromFolder(layout.Tokenizer2), tokenizer3,
                scheduler, dev, dtype) { Source = directory };
        }
        catch
        {
            foreach (var part in parts) part.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public string Family => Policy.Family;

    /// <summary>Pixels per latent cell: 2^(VAE levels - 1) (8 for SD3).</summary>
    public int VaeScaleFactor => 1 << (Vae.Config.BlockOutChannels.Length - 1);

    /// <inheritdoc />
    public int DefaultImageSize => Transformer.Config.SampleSize * VaeScaleFactor;

    /// <summary>
    /// diffusers' <c>encode_prompt</c> for one batch of prompts (no gradient): each CLIP's penultimate hidden states
    /// (<c>hidden_states[-2]</c>) concatenated along the features and zero-padded to T5's width, then T5's last hidden
    /// states (<see cref="MaxSequenceLength"/> tokens; zeros without T5) appended along the sequence; the pooled
    /// embeddings are the two CLIPs' projected text embeddings concatenated. Returns ([B, 77 + T, D], [B, P]).
    /// </summary>
    public (Tensor PromptEmbeds, Tensor PooledPromptEmbeds) EncodePrompt(IReadOnlyList<string> prompts)
    {
        if (prompts.Count == 0) throw new ArgumentException("at least one prompt is needed", nameof(prompts));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var l = TextEncoder.Encode(Tokenizer.EncodeBatch(prompts, ClipTokenizer.DefaultMaxLength).to(Device));
        var g = TextEncoder2.Encode(Tokenizer2.EncodeBatch(prompts, ClipTokenizer.DefaultMaxLength).to(Device));
        var clip = cat([l.PenultimateHiddenState, g.PenultimateHiddenState], -1);
        long width = Transformer.Config.JointAttentionDim;
        Tensor t5;
        if (TextEncoder3 is null)
        {
            t5 = zeros([prompts.Count, ClipTokenizer.DefaultMaxLength, width], clip.dtype, Device);
        }
        else
        {
            var (ids, _) = Tokenizer3!.EncodeBatch(prompts, MaxSequenceLength);
            t5 = TextEncoder3.forward(ids.to(Device)).to(clip.dtype);
        }
        if (clip.shape[2] > t5.shape[2])
        {
            throw new InvalidOperationException($"the CLIP embeddings are {clip.shape[2]} wide, wider than T5's {t5.shape[2]}: not an SD3 text stack");
        }
        clip = nn.functional.pad(clip, [0, t5.shape[2] - clip.shape[2]]);
        var embeds = cat([clip, t5], 1).to(ScalarType.Float32);
        var pooled = cat([l.TextEmbeds, g.TextEmbeds], -1).to(ScalarType.Float32);
        return (embeds.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
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

    /// <summary>Final latents to images [B, 3, H, W] float32 in [0, 1] on the CPU: <c>latents / scaling_factor + shift_factor</c> decoded.</summary>
    public Tensor DecodeToImages(Tensor latents)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        // The shift and scale in float32, then the decoder in the weights' dtype.
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
        TextEncoder3?.Dispose();
        Scheduler.Dispose();
    }
}
