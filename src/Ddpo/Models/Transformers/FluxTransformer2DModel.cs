using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers (0.31) <c>FluxTransformer2DModel</c>, the denoiser of FLUX.1-dev and FLUX.1-schnell: packed latent tokens
/// (<c>x_embedder</c>) and T5 tokens (<c>context_embedder</c>), timestep (+ distilled guidance for dev) + pooled CLIP
/// conditioning, double-stream blocks, then single-stream blocks over text + image, an AdaLayerNormContinuous output
/// norm and <c>proj_out</c> on the image tokens. Positions are 3-axis RoPE from <c>txt_ids</c> / <c>img_ids</c>. Module
/// and state-dict names equal diffusers'; every attention projection and the blocks' MLP linears are LoRA-capable
/// <c>LoraLinear</c>s.
/// </summary>
internal sealed class FluxTransformer2DModel : nn.Module
{
    [ComponentName(Name = "time_text_embed")] private readonly nn.Module _timeTextEmbed;
    [ComponentName(Name = "context_embedder")] private readonly Linear _contextEmbedder;
    [ComponentName(Name = "x_embedder")] private readonly Linear _xEmbedder;
    [ComponentName(Name = "transformer_blocks")] private readonly ModuleList<FluxTransformerBlock> _blocks;
    [ComponentName(Name = "single_transformer_blocks")] private readonly ModuleList<FluxSingleTransformerBlock> _singleBlocks;
    [ComponentName(Name = "norm_out")] private readonly AdaLayerNormContinuous _normOut;
    [ComponentName(Name = "proj_out")] private readonly Linear _projOut;

    /// <summary>The configuration the model was built from.</summary>
    public FluxTransformer2DModelConfig Config { get; }

    /// <summary>
    /// Builds the model with random weights on the CPU in float32 (see <see cref="SD3Init"/>: PyTorch's default rule,
    /// RMS-norm weights 1, nothing zeroed, so a fresh tiny model gives non-trivial outputs in tests).
    /// </summary>
    public FluxTransformer2DModel(FluxTransformer2DModelConfig config, Generator? generator = null)
        : this(config, null, null, initialize: true, generator) { }

    /// <summary>
    /// Builds the model with random weights (as <see cref="FluxTransformer2DModel(FluxTransformer2DModelConfig, Generator?)"/>)
    /// directly in <paramref name="dtype"/> on <paramref name="device"/>; on the meta device only shapes exist.
    /// </summary>
    public FluxTransformer2DModel(FluxTransformer2DModelConfig config, ScalarType? dtype, Device? device, Generator? generator = null)
        : this(config, dtype, device, initialize: true, generator) { }

    private FluxTransformer2DModel(FluxTransformer2DModelConfig config, ScalarType? dtype, Device? device, bool initialize, Generator? generator)
        : base(nameof(FluxTransformer2DModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        var o = new ModuleOptions(device, dtype);
        var c = config;
        int dim = c.InnerDim;
        _timeTextEmbed = c.GuidanceEmbeds
            ? new CombinedTimestepGuidanceTextProjEmbeddings(dim, c.PooledProjectionDim, o)
            : new CombinedTimestepTextProjEmbeddings(dim, c.PooledProjectionDim, o);
        _contextEmbedder = o.Linear(c.JointAttentionDim, dim);
        _xEmbedder = o.Linear(c.InChannels, dim);
        _blocks = new ModuleList<FluxTransformerBlock>(Enumerable.Range(0, c.NumLayers)
            .Select(_ => new FluxTransformerBlock(dim, c.NumAttentionHeads, c.AttentionHeadDim, o)).ToArray());
        _singleBlocks = new ModuleList<FluxSingleTransformerBlock>(Enumerable.Range(0, c.NumSingleLayers)
            .Select(_ => new FluxSingleTransformerBlock(dim, c.NumAttentionHeads, c.AttentionHeadDim, device, dtype)).ToArray());
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
    public static FluxTransformer2DModel FromPretrained(string directory) => FromPretrained(directory, ScalarType.Float32, CPU);

    /// <summary>Loads as <see cref="FromPretrained(string)"/>, in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public static FluxTransformer2DModel FromPretrained(string directory, ScalarType dtype, Device device) =>
        PretrainedFolder.Load(directory, dtype,
            () => new FluxTransformer2DModel(FluxTransformer2DModelConfig.Load(PretrainedFolder.ConfigPath(directory)), dtype, device, initialize: false, null));

    /// <summary>Writes <c>config.json</c> and <c>diffusion_pytorch_model.safetensors</c> (base weights, no LoRA), diffusers' names.</summary>
    public void SavePretrained(string directory) => PretrainedFolder.Save(this, directory, ConfigJson.Write(Config.ToJson()));

    /// <summary>The dtype of the model's weights.</summary>
    public ScalarType DType => _xEmbedder.weight!.dtype;

    /// <summary>The device of the model's weights.</summary>
    public Device Device => _xEmbedder.weight!.device;

    private static string Shape(Tensor t) => $"[{string.Join(", ", t.shape)}]";

    /// <summary>
    /// The prediction (<c>.sample</c>) [B, N, patch_size² x out_channels] for packed latent tokens
    /// <paramref name="hiddenStates"/> [B, N, in_channels], T5 embeddings <paramref name="encoderHiddenStates"/>
    /// [B, S, joint_attention_dim], pooled CLIP <paramref name="pooledProjections"/> [B, pooled_projection_dim], the
    /// timestep as sigma = t/1000 [B] (a scalar or [1] is broadcast; multiplied by 1000 here, as diffusers), position ids
    /// <paramref name="imgIds"/> [N, 3] and <paramref name="txtIds"/> [S, 3] (3-D ids: the first batch entry is used, as
    /// diffusers does), and for guidance-distilled models the raw guidance scale [B] (e.g. 3.5; also multiplied by 1000).
    /// Inputs are converted to the model's dtype and device; gradients flow through.
    /// </summary>
    public Tensor forward(Tensor hiddenStates, Tensor encoderHiddenStates, Tensor pooledProjections, Tensor timestep,
        Tensor imgIds, Tensor txtIds, Tensor? guidance = null)
    {
        var c = Config;
        if (hiddenStates.dim() != 3 || hiddenStates.shape[2] != c.InChannels)
        {
            throw new ArgumentException($"hiddenStates must be packed tokens [B, N, {c.InChannels}], got {Shape(hiddenStates)}", nameof(hiddenStates));
        }
        long b = hiddenStates.shape[0], n = hiddenStates.shape[1];
        if (encoderHiddenStates.dim() != 3 || encoderHiddenStates.shape[0] != b || encoderHiddenStates.shape[2] != c.JointAttentionDim)
        {
            throw new ArgumentException($"encoderHiddenStates must be [{b}, S, {c.JointAttentionDim}], got {Shape(encoderHiddenStates)}", nameof(encoderHiddenStates));
        }
        long s = encoderHiddenStates.shape[1];
        if (pooledProjections.dim() != 2 || pooledProjections.shape[0] != b || pooledProjections.shape[1] != c.PooledProjectionDim)
        {
            throw new ArgumentException($"pooledProjections must be [{b}, {c.PooledProjectionDim}], got {Shape(pooledProjections)}", nameof(pooledProjections));
        }
        if (c.GuidanceEmbeds && guidance is null)
        {
            throw new ArgumentException("this model has guidance_embeds (FLUX.1-dev style): pass the guidance scale", nameof(guidance));
        }
        if (!c.GuidanceEmbeds && guidance is not null)
        {
            throw new ArgumentException("this model has no guidance embedding (guidance_embeds false, FLUX.1-schnell style): pass guidance = null", nameof(guidance));
        }
        using var scope = NewDisposeScope();
        var dtype = DType;
        var device = Device;
        var img = Ids(imgIds, n, nameof(imgIds));
        var txt = Ids(txtIds, s, nameof(txtIds));
        var x = Placement.To(hiddenStates, dtype, device);
        var context = Placement.To(encoderHiddenStates, dtype, device);
        var pooled = Placement.To(pooledProjections, dtype, device);

        var hidden = _xEmbedder.call(x);
        // diffusers: timestep.to(hidden_states.dtype) * 1000 (and the same for guidance).
        var t = PerSample(timestep, b, dtype, device, nameof(timestep)) * 1000;
        Tensor temb = guidance is null
            ? ((CombinedTimestepTextProjEmbeddings)_timeTextEmbed).Forward(t, pooled)
            : ((CombinedTimestepGuidanceTextProjEmbeddings)_timeTextEmbed).Forward(t, PerSample(guidance, b, dtype, device, nameof(guidance)) * 1000, pooled);
        var ctx = _contextEmbedder.call(context);

        var (cos, sin) = FluxPosEmbed.Compute(cat([txt, img], 0).to(device), c.AxesDimsRope);
        foreach (var block in _blocks)
        {
            (ctx, hidden) = block.Forward(hidden, ctx, temb, cos, sin);
        }
        hidden = cat([ctx, hidden], 1);
        foreach (var block in _singleBlocks)
        {
            hidden = block.Forward(hidden, temb, cos, sin);
        }
        hidden = hidden[.., (int)s..];
        var output = _projOut.call(_normOut.Forward(hidden, temb));
        return output.MoveToOuterDisposeScope();
    }

    private static Tensor Ids(Tensor ids, long length, string name)
    {
        // diffusers 0.31 warns on 3-D ids and takes the first batch entry.
        if (ids.dim() == 3) ids = ids[0];
        if (ids.dim() != 2 || ids.shape[0] != length || ids.shape[1] != 3)
        {
            throw new ArgumentException($"{name} must be [{length}, 3] (or [1, {length}, 3]), got {Shape(ids)}", name);
        }
        return ids;
    }

    private static Tensor PerSample(Tensor value, long b, ScalarType dtype, Device device, string name)
    {
        var v = Placement.To(value, dtype, device);
        if (v.dim() == 0) v = v.unsqueeze(0);
        if (v.dim() != 1 || (v.shape[0] != b && v.shape[0] != 1))
        {
            throw new ArgumentException($"{name} must be a scalar, [1] or [{b}], got {Shape(value)}", name);
        }
        return v.shape[0] == b ? v : v.expand(b);
    }
}
