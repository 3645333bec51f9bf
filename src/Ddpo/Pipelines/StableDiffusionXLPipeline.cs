using Ddpo.Models.Blocks;
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
/// Stable Diffusion XL (diffusers' <c>StableDiffusionXLPipeline</c>, 0.31 <c>pipeline_stable_diffusion_xl.py</c>): a
/// <c>text_time</c> UNet conditioned on two CLIP text encoders' penultimate states (CLIP-L and OpenCLIP bigG), bigG's
/// pooled projection and the size/crop ids, sampled with DDIM (the folder's scheduler config read as DDIM, as for SD
/// 1/2) so that sampling yields DDPO trajectories. Frozen weights run in <see cref="DType"/>; latents and the scheduler
/// math stay float32; the VAE stays float32 in a float16 pipeline when its config says <c>force_upcast</c> (the SDXL
/// VAE overflows in float16).
/// </summary>
public sealed class StableDiffusionXLPipeline : ITextToImagePipeline
{
    internal UNet2DConditionModel Unet { get; }
    internal AutoencoderKL Vae { get; }
    internal ClipTextModel TextEncoder { get; }
    internal ClipTextModelWithProjection TextEncoder2 { get; }
    internal ClipTokenizer Tokenizer { get; }
    internal ClipTokenizer Tokenizer2 { get; }
    internal DdimScheduler Scheduler { get; }

    /// <summary>diffusers' <c>force_zeros_for_empty_prompt</c>: an empty (negative) prompt is all-zero embeddings, not the encoded "".</summary>
    public bool ForceZerosForEmptyPrompt { get; }

    /// <inheritdoc />
    public Device Device { get; }

    /// <inheritdoc />
    public ScalarType DType { get; }

    /// <inheritdoc />
    public string? Source { get; init; }

    /// <summary>The pipeline as a policy (what training and evaluation use).</summary>
    internal IDiffusionPolicy Policy { get; }

    IDiffusionPolicy ITextToImagePipeline.Policy => Policy;

    /// <summary>
    /// Assembles a pipeline from loaded parts (on <paramref name="device"/>; the VAE may be float32 in a float16 pipeline),
    /// checking that the UNet is a text_time one whose widths match the encoders.
    /// </summary>
    internal StableDiffusionXLPipeline(UNet2DConditionModel unet, AutoencoderKL vae, ClipTextModel textEncoder,
        ClipTextModelWithProjection textEncoder2, ClipTokenizer tokenizer, ClipTokenizer tokenizer2, DdimScheduler scheduler,
        bool forceZerosForEmptyPrompt, Device device, ScalarType dtype, string source = "StableDiffusionXLPipeline")
    {
        CheckWidths(unet.Config, textEncoder.Config, textEncoder2.Config, source);
        Unet = unet;
        Vae = vae;
        TextEncoder = textEncoder;
        TextEncoder2 = textEncoder2;
        Tokenizer = tokenizer;
        Tokenizer2 = tokenizer2;
        Scheduler = scheduler;
        ForceZerosForEmptyPrompt = forceZerosForEmptyPrompt;
        Device = device;
        DType = dtype;
        unet.eval();
        foreach (nn.Module frozen in new nn.Module[] { vae, textEncoder, textEncoder2 })
        {
            frozen.eval();
            foreach (var p in frozen.parameters()) p.requires_grad = false;
        }
        Policy = new SdxlPolicy(this);
    }

    /// <summary>
    /// Loads a diffusers <c>StableDiffusionXLPipeline</c> folder: <c>unet/</c>, <c>vae/</c>, <c>text_encoder/</c>
    /// (CLIPTextModel), <c>text_encoder_2/</c> (CLIPTextModelWithProjection), <c>tokenizer/</c>, <c>tokenizer_2/</c> and
    /// <c>scheduler/</c> (any scheduler's config read as DDIM; Stable Diffusion's DDIM without one), strictly. In float16
    /// the VAE is loaded in float32 when its config says <c>force_upcast</c> (diffusers upcasts it to decode).
    /// </summary>
    public static StableDiffusionXLPipeline FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var layout = StableDiffusionXLLayout.Read(directory);
        var dev = device ?? CPU;
        var parts = new List<IDisposable>();
        T Keep<T>(T part) where T : IDisposable
        {
            parts.Add(part);
            return part;
        }
        try
        {
            var unet = Keep(UNet2DConditionModel.FromPretrained(layout.Unet, dtype, dev));
            var vaeConfig = AutoencoderKLConfig.Load(PretrainedFolder.ConfigPath(layout.Vae));
            var vaeType = dtype == ScalarType.Float16 && vaeConfig.ForceUpcast ? ScalarType.Float32 : dtype;
            var vae = Keep(AutoencoderKL.FromPretrained(layout.Vae, vaeType, dev));
            var text = Keep(ClipTextModel.FromPretrained(layout.TextEncoder, dtype, dev));
            var text2 = Keep(ClipTextModelWithProjection.FromPretrained(layout.TextEncoder2, dtype, dev));
            var scheduler = new DdimScheduler(layout.SchedulerConfig is null
                ? DdimSchedulerConfig.StableDiffusion()
                : DdimSchedulerConfig.Load(layout.SchedulerConfig));
            return new StableDiffusionXLPipeline(unet, vae, text, text2, ClipTokenizer.FromFolder(layout.Tokenizer),
                ClipTokenizer.FromFolder(layout.Tokenizer2), scheduler, layout.ForceZerosForEmptyPrompt, dev, dtype, layout.Unet)
            { Source = directory };
        }
        catch
        {
            foreach (var part in parts) part.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The UNet must be SDXL's: text_time, cross-attention over both encoders' widths, and <c>add_embedding</c> taking
    /// the pooled projection plus six time ids; otherwise an error naming the UNet folder and the field.
    /// </summary>
    private static void CheckWidths(UNet2DConditionConfig unet, ClipTextConfig l, ClipTextConfig g, string source)
    {
        if (!unet.IsTextTime)
        {
            throw new ModelLoadException($"{source}: addition_embed_type must be \"text_time\" in a StableDiffusionXLPipeline's UNet, got {(unet.AdditionEmbedType is null ? "null" : $"\"{unet.AdditionEmbedType}\"")}");
        }
        int context = l.HiddenSize + g.HiddenSize;
        if (unet.CrossAttentionDim.Any(d => d != context))
        {
            throw new ModelLoadException($"{source}: cross_attention_dim [{string.Join(", ", unet.CrossAttentionDim)}] must equal text_encoder's + text_encoder_2's hidden_size ({l.HiddenSize} + {g.HiddenSize} = {context})");
        }
        int added = g.ProjectionDim + TimeIdCount * unet.AdditionTimeEmbedDim!.Value;
        if (unet.ProjectionClassEmbeddingsInputDim != added)
        {
            throw new ModelLoadException($"{source}: projection_class_embeddings_input_dim {unet.ProjectionClassEmbeddingsInputDim} must equal text_encoder_2's " +
                $"projection_dim + {TimeIdCount} x addition_time_embed_dim ({g.ProjectionDim} + {TimeIdCount} x {unet.AdditionTimeEmbedDim} = {added})");
        }
    }

    /// <summary>The number of SDXL time ids: original size, crop top-left and target size.</summary>
    public const int TimeIdCount = 6;

    /// <inheritdoc />
    public string Family => Policy.Family;

    /// <summary>Pixels per latent cell: 2^(VAE levels - 1) (8 for SDXL).</summary>
    public int VaeScaleFactor => 1 << (Vae.Config.BlockOutChannels.Length - 1);

    /// <inheritdoc />
    public int DefaultImageSize => (Unet.Config.SampleSize ?? 128) * VaeScaleFactor;

    /// <summary>Channels of the latents (4).</summary>
    public int LatentChannels => Unet.Config.InChannels;

    /// <summary>
    /// diffusers' <c>encode_prompt</c> without clip_skip (no gradient): CLIP-L's and bigG's penultimate hidden states
    /// (<c>hidden_states[-2]</c>) concatenated along the features, and bigG's projected pooled embedding. With
    /// <see cref="ForceZerosForEmptyPrompt"/>, an empty prompt gives zeros for both (what diffusers does for the
    /// negative prompt when none is given). Returns ([B, 77, D_L + D_G], [B, P]) float32.
    /// </summary>
    public (Tensor PromptEmbeds, Tensor PooledPromptEmbeds) EncodePrompt(IReadOnlyList<string> prompts)
    {
        if (prompts.Count == 0) throw new ArgumentException("at least one prompt is needed", nameof(prompts));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (_, l, _) = TextEncoder.EncodeWithPenultimate(Tokenizer.EncodeBatch(prompts, ClipTokenizer.DefaultMaxLength).to(Device));
        var g = TextEncoder2.Encode(Tokenizer2.EncodeBatch(prompts, ClipTokenizer.DefaultMaxLength).to(Device));
        var embeds = cat([l, g.PenultimateHiddenState], -1).to(ScalarType.Float32);
        var pooled = g.TextEmbeds.to(ScalarType.Float32);
        if (ForceZerosForEmptyPrompt && prompts.Any(p => p.Length == 0))
        {
            var keep = tensor(prompts.Select(p => p.Length == 0 ? 0f : 1f).ToArray()).to(Device);
            embeds = embeds * keep.view(-1, 1, 1);
            pooled = pooled * keep.view(-1, 1);
        }
        return (embeds.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// diffusers' <c>_get_add_time_ids</c> with its defaults for an image of <paramref name="height"/> x <paramref name="width"/>:
    /// <c>original_size = target_size = (height, width)</c>, <c>crops_coords_top_left = (0, 0)</c>, i.e. rows of
    /// (H, W, 0, 0, H, W) [<paramref name="batch"/>, 6] float32 on <paramref name="device"/>.
    /// </summary>
    public static Tensor TimeIds(long batch, int height, int width, Device device)
    {
        using var scope = NewDisposeScope();
        var row = tensor(new float[] { height, width, 0, 0, height, width });
        return HostCopy.ToDevice(row.unsqueeze(0).expand(batch, TimeIdCount).contiguous(), device).MoveToOuterDisposeScope();
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
    /// Final latents to images [B, 3, H, W] float32 in [0, 1] on the CPU: <c>latents / scaling_factor</c> (0.13025 for SDXL,
    /// from the VAE config) decoded in the VAE's dtype (float32 when upcast).
    /// </summary>
    public Tensor DecodeToImages(Tensor latents)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return HostCopy.ToHost(DecodeOnDevice(latents).to(ScalarType.Float32)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="DecodeToImages"/> with the graph kept, on the device: images [B, 3, H, W] in [0, 1], float32 (float64 for a
    /// float64 VAE), differentiable with respect to <paramref name="latents"/> (for reward backpropagation).
    /// </summary>
    public Tensor DecodeOnDevice(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var pixels = Vae.Decode((latents / Vae.ScalingFactor).to(Vae.DType));
        var outType = pixels.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        return (pixels.to(outType) / 2 + 0.5).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Unet.Dispose();
        Vae.Dispose();
        TextEncoder.Dispose();
        TextEncoder2.Dispose();
        Scheduler.Dispose();
    }
}
