using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers (0.31) <c>SD3Transformer2DModel</c>, the MMDiT denoiser of SD3-medium and SD3.5-medium/large: patch
/// embedding with cropped sin-cos positions, timestep + pooled-text conditioning, joint image/text transformer blocks,
/// an AdaLayerNormContinuous output norm and <c>proj_out</c>, unpatchified to [B, out_channels, H, W]. Module and
/// state-dict names equal diffusers' (the persistent <c>pos_embed.pos_embed</c> buffer included); every attention
/// projection is a LoRA-capable <c>LoraLinear</c>.
/// </summary>
internal sealed class SD3Transformer2DModel : nn.Module
{
    [ComponentName(Name = "pos_embed")] private readonly SD3PatchEmbed _posEmbed;
    [ComponentName(Name = "time_text_embed")] private readonly CombinedTimestepTextProjEmbeddings _timeTextEmbed;
    [ComponentName(Name = "context_embedder")] private readonly Linear _contextEmbedder;
    [ComponentName(Name = "transformer_blocks")] private readonly ModuleList<JointTransformerBlock> _blocks;
    [ComponentName(Name = "norm_out")] private readonly AdaLayerNormContinuous _normOut;
    [ComponentName(Name = "proj_out")] private readonly Linear _projOut;

    /// <summary>The configuration the model was built from.</summary>
    public SD3Transformer2DModelConfig Config { get; }

    /// <summary>
    /// Builds the model with random weights on the CPU in float32 (see <see cref="SD3Init"/>: PyTorch's default rule,
    /// nothing zero-initialised, the output projection included, so a fresh tiny model is useful in tests).
    /// </summary>
    public SD3Transformer2DModel(SD3Transformer2DModelConfig config, Generator? generator = null)
        : this(config, null, null, initialize: true, generator) { }

    /// <summary>
    /// Builds the model with random weights (as <see cref="SD3Transformer2DModel(SD3Transformer2DModelConfig, Generator?)"/>)
    /// directly in <paramref name="dtype"/> on <paramref name="device"/>; on the meta device only shapes exist.
    /// </summary>
    public SD3Transformer2DModel(SD3Transformer2DModelConfig config, ScalarType? dtype, Device? device, Generator? generator = null)
        : this(config, dtype, device, initialize: true, generator) { }

    private SD3Transformer2DModel(SD3Transformer2DModelConfig config, ScalarType? dtype, Device? device, bool initialize, Generator? generator)
        : base(nameof(SD3Transformer2DModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        var o = new ModuleOptions(device, dtype);
        var c = config;
        int dim = c.InnerDim;
        _posEmbed = new SD3PatchEmbed(c, o, computePositions: initialize);
        _timeTextEmbed = new CombinedTimestepTextProjEmbeddings(dim, c.PooledProjectionDim, o);
        _contextEmbedder = o.Linear(c.JointAttentionDim, c.CaptionProjectionDim);
        _blocks = new ModuleList<JointTransformerBlock>(Enumerable.Range(0, c.NumLayers)
            .Select(i => new JointTransformerBlock(dim, c.NumAttentionHeads, c.AttentionHeadDim, contextPreOnly: i == c.NumLayers - 1,
                qkNorm: c.QkNorm is not null, dualAttention: c.DualAttentionLayers.Contains(i), o))
            .ToArray());
        _normOut = new AdaLayerNormContinuous(dim, dim, device, dtype);
        _projOut = o.Linear(dim, (long)c.PatchSize * c.PatchSize * c.OutChannels);
        RegisterComponents();
        if (initialize) SD3Init.Apply(this, generator);
    }

    /// <summary>
    /// Loads a diffusers transformer folder in float32 on the CPU (<c>config.json</c> + <c>diffusion_pytorch_model.safetensors</c>, its
    /// <c>.fp16</c> variant or a sharded checkpoint with an index) strictly: a missing, unexpected or wrong-shaped key is a
    /// <c>ModelLoadException</c> naming the file and key. The model is returned in eval mode.
    /// </summary>
    public static SD3Transformer2DModel FromPretrained(string directory) => FromPretrained(directory, ScalarType.Float32, CPU);

    /// <summary>Loads as <see cref="FromPretrained(string)"/>, in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public static SD3Transformer2DModel FromPretrained(string directory, ScalarType dtype, Device device) =>
        PretrainedFolder.Load(directory, dtype,
            () => new SD3Transformer2DModel(SD3Transformer2DModelConfig.Load(PretrainedFolder.ConfigPath(directory)), dtype, device, initialize: false, null));

    /// <summary>Writes <c>config.json</c> and <c>diffusion_pytorch_model.safetensors</c> (base weights and pos_embed, no LoRA), diffusers' names.</summary>
    public void SavePretrained(string directory) => PretrainedFolder.Save(this, directory, ConfigJson.Write(Config.ToJson()));

    /// <summary>The dtype of the model's weights.</summary>
    public ScalarType DType => _contextEmbedder.weight!.dtype;

    /// <summary>The device of the model's weights.</summary>
    public Device Device => _contextEmbedder.weight!.device;

    /// <summary>
    /// The prediction (<c>.sample</c>) [B, out_channels, H, W] for latents <paramref name="hiddenStates"/> [B, in_channels, H, W]
    /// (H, W multiples of patch_size), text embeddings <paramref name="encoderHiddenStates"/> [B, S, joint_attention_dim],
    /// pooled text <paramref name="pooledProjections"/> [B, pooled_projection_dim] and float timesteps [B] (sigma * 1000; a
    /// scalar or [1] is broadcast). Inputs are converted to the model's dtype and device; gradients flow through.
    /// </summary>
    public Tensor forward(Tensor hiddenStates, Tensor encoderHiddenStates, Tensor pooledProjections, Tensor timestep)
    {
        var c = Config;
        if (hiddenStates.dim() != 4 || hiddenStates.shape[1] != c.InChannels)
        {
            throw new ArgumentException($"hiddenStates must be [B, {c.InChannels}, H, W], got [{string.Join(", ", hiddenStates.shape)}]", nameof(hiddenStates));
        }
        long b = hiddenStates.shape[0], height = hiddenStates.shape[2], width = hiddenStates.shape[3];
        if (height % c.PatchSize != 0 || width % c.PatchSize != 0)
        {
            throw new ArgumentException($"height and width ({height} x {width}) must be multiples of patch_size {c.PatchSize}", nameof(hiddenStates));
        }
        if (encoderHiddenStates.dim() != 3 || encoderHiddenStates.shape[0] != b || encoderHiddenStates.shape[2] != c.JointAttentionDim)
        {
            throw new ArgumentException($"encoderHiddenStates must be [{b}, S, {c.JointAttentionDim}], got [{string.Join(", ", encoderHiddenStates.shape)}]", nameof(encoderHiddenStates));
        }
        if (pooledProjections.dim() != 2 || pooledProjections.shape[0] != b || pooledProjections.shape[1] != c.PooledProjectionDim)
        {
            throw new ArgumentException($"pooledProjections must be [{b}, {c.PooledProjectionDim}], got [{string.Join(", ", pooledProjections.shape)}]", nameof(pooledProjections));
        }
        using var scope = NewDisposeScope();
        var dtype = DType;
        var device = Device;
        var x = Placement.To(hiddenStates, dtype, device);
        var context = Placement.To(encoderHiddenStates, dtype, device);
        var pooled = Placement.To(pooledProjections, dtype, device);
        var t = Placement.IsOn(timestep, device) ? timestep : timestep.to(device);
        if (t.dim() == 0) t = t.unsqueeze(0);
        if (t.dim() != 1 || (t.shape[0] != b && t.shape[0] != 1))
        {
            throw new ArgumentException($"timestep must be a scalar, [1] or [{b}], got [{string.Join(", ", timestep.shape)}]", nameof(timestep));
        }
        if (t.shape[0] != b) t = t.expand(b);

        var hidden = _posEmbed.call(x);
        var temb = _timeTextEmbed.Forward(t, pooled);
        Tensor? ctx = _contextEmbedder.call(context);
        foreach (var block in _blocks)
        {
            (ctx, hidden) = block.Forward(hidden, ctx!, temb);
        }
        hidden = _projOut.call(_normOut.Forward(hidden, temb));

        // Unpatchify: [B, h*w, p*p*C] -> [B, C, h*p, w*p] (diffusers' einsum "nhwpqc->nchpwq").
        long p = c.PatchSize, h = height / p, w = width / p;
        var output = hidden.reshape(b, h, w, p, p, c.OutChannels).permute(0, 5, 1, 3, 2, 4).reshape(b, c.OutChannels, h * p, w * p);
        return output.MoveToOuterDisposeScope();
    }
}
