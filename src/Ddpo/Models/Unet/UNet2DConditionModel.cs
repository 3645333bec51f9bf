using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Unet;

/// <summary>
/// diffusers <c>UNet2DConditionModel</c> for Stable Diffusion 1.x / 2.x and SDXL: predicts the noise (or v) for a
/// noisy sample, a timestep and text embeddings (SDXL: also pooled text embeddings and size/crop ids,
/// <c>addition_embed_type = "text_time"</c>). Submodule names equal diffusers' state-dict names.
/// </summary>
internal sealed class UNet2DConditionModel : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    [ComponentName(Name = "conv_in")] private readonly Conv2d _convIn;
    [ComponentName(Name = "time_embedding")] private readonly TimestepEmbedding _timeEmbedding;
    [ComponentName(Name = "add_embedding")] private readonly TimestepEmbedding? _addEmbedding;
    [ComponentName(Name = "down_blocks")] private readonly ModuleList<UNetDownBlock> _downBlocks;
    [ComponentName(Name = "mid_block")] private readonly MidBlockCrossAttn _midBlock;
    [ComponentName(Name = "up_blocks")] private readonly ModuleList<UNetUpBlock> _upBlocks;
    [ComponentName(Name = "conv_norm_out")] private readonly GroupNorm _convNormOut;
    [ComponentName(Name = "conv_out")] private readonly Conv2d _convOut;

    /// <summary>The configuration the model was built from.</summary>
    public UNet2DConditionConfig Config { get; }

    /// <summary>
    /// Builds the model with random weights (PyTorch default initialisation for convolutions and linear
    /// layers, norms at weight 1 / bias 0), directly in <paramref name="dtype"/> on <paramref name="device"/>.
    /// </summary>
    public UNet2DConditionModel(UNet2DConditionConfig config, ScalarType? dtype = null, Device? device = null)
        : base(nameof(UNet2DConditionModel))
    {
        config.Validate();
        Config = config;
        var o = new ModuleOptions(device, dtype);
        var c = config;
        int n = c.BlockOutChannels.Length;
        _convIn = o.Conv(c.InChannels, c.BlockOutChannels[0], c.ConvInKernel, padding: (c.ConvInKernel - 1) / 2);
        _timeEmbedding = new TimestepEmbedding(c.BlockOutChannels[0], c.TimeEmbedDim, o);
        // add_time_proj is a parameter-free sinusoid (computed in AugmentedEmbedding); add_embedding maps
        // cat(text_embeds, time-id sinusoids) to the time embedding's width.
        if (c.IsTextTime) _addEmbedding = new TimestepEmbedding(c.ProjectionClassEmbeddingsInputDim!.Value, c.TimeEmbedDim, o);
        _downBlocks = new ModuleList<UNetDownBlock>(Enumerable.Range(0, n)
            .Select(i => (UNetDownBlock)new DownBlock(c, i, c.BlockOutChannels[Math.Max(i - 1, 0)], o))
            .ToArray());
        _midBlock = new MidBlockCrossAttn(c, o);
        _upBlocks = new ModuleList<UNetUpBlock>(Enumerable.Range(0, n)
            .Select(i => (UNetUpBlock)new UpBlock(c, i, o))
            .ToArray());
        _convNormOut = o.GroupNorm(c.NormNumGroups, c.BlockOutChannels[0], c.NormEps);
        _convOut = o.Conv(c.BlockOutChannels[0], c.OutChannels, c.ConvOutKernel, padding: (c.ConvOutKernel - 1) / 2);
        RegisterComponents();
    }

    /// <summary>Loads a diffusers UNet folder (<c>config.json</c> + weights) in float32 on the CPU.</summary>
    public static UNet2DConditionModel FromPretrained(string directory) => FromPretrained(directory, ScalarType.Float32, CPU);

    /// <summary>
    /// Loads a diffusers UNet folder: <c>config.json</c> and <c>diffusion_pytorch_model.safetensors</c>
    /// (or the <c>.fp16</c> variant, or a sharded checkpoint with an index), strictly, converted to
    /// <paramref name="dtype"/> on <paramref name="device"/>. The model is returned in eval mode.
    /// </summary>
    public static UNet2DConditionModel FromPretrained(string directory, ScalarType dtype, Device device) =>
        PretrainedFolder.Load(directory, dtype, () => new UNet2DConditionModel(UNet2DConditionConfig.Load(PretrainedFolder.ConfigPath(directory)), dtype, device));

    /// <summary>Writes <c>config.json</c> and <c>diffusion_pytorch_model.safetensors</c> (base weights only, no LoRA) to <paramref name="directory"/>.</summary>
    public void SavePretrained(string directory) => PretrainedFolder.Save(this, directory, Config.ToJson());

    /// <summary>The dtype of the model's weights.</summary>
    public ScalarType DType => _convIn.weight!.dtype;

    /// <summary>The device of the model's weights.</summary>
    public Device Device => _convIn.weight!.device;

    /// <summary>
    /// Predicts from <paramref name="sample"/> [B, C, H, W], <paramref name="timestep"/> (0-d or [B] / [1], integer or
    /// float; broadcast to the batch) and <paramref name="encoderHiddenStates"/> [B, S, cross_attention_dim].
    /// Inputs are converted to the model's dtype and device; the output has the model's dtype.
    /// </summary>
    /// <remarks>A <c>text_time</c> (SDXL) model needs <see cref="forward(Tensor, Tensor, Tensor, Tensor?, Tensor?)"/>.</remarks>
    public override Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates) =>
        forward(sample, timestep, encoderHiddenStates, null, null);

    /// <summary>
    /// As <see cref="forward(Tensor, Tensor, Tensor)"/>, with diffusers' <c>added_cond_kwargs</c> of an SDXL (<c>text_time</c>)
    /// model: <paramref name="textEmbeds"/> [B, P] (text_encoder_2's pooled projection) and <paramref name="timeIds"/> [B, N]
    /// (SDXL: N = 6, <c>(orig_h, orig_w, crop_top, crop_left, target_h, target_w)</c>). Both are required for such a
    /// model (as diffusers raises) and ignored by the others, as in diffusers.
    /// </summary>
    public Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Tensor? textEmbeds, Tensor? timeIds)
    {
        if (sample.dim() != 4)
        {
            throw new ArgumentException($"sample must be [B, C, H, W], got [{string.Join(", ", sample.shape)}]", nameof(sample));
        }
        if (encoderHiddenStates.dim() != 3)
        {
            throw new ArgumentException($"encoderHiddenStates must be [B, S, D], got [{string.Join(", ", encoderHiddenStates.shape)}]", nameof(encoderHiddenStates));
        }
        var dtype = DType;
        var device = Device;
        sample = Placement.To(sample, dtype, device);
        encoderHiddenStates = Placement.To(encoderHiddenStates, dtype, device);
        long batch = sample.shape[0];

        int upFactor = 1 << (_upBlocks.Count - 1);
        bool forwardUpsampleSize = sample.shape[2] % upFactor != 0 || sample.shape[3] % upFactor != 0;

        if (Config.CenterInputSample) sample = 2 * sample - 1.0;

        var temb = _timeEmbedding.call(TimeProjection(timestep, batch, device).to(dtype));
        if (_addEmbedding is not null) temb = temb + AugmentedEmbedding(_addEmbedding, textEmbeds, timeIds, batch, dtype, device);

        var hidden = SafeConv.Call(_convIn, sample);
        var skips = new List<Tensor>(3 * _downBlocks.Count + 1) { hidden };
        foreach (var block in _downBlocks)
        {
            hidden = block.Forward(hidden, temb, encoderHiddenStates, skips);
        }
        hidden = _midBlock.Forward(hidden, temb, encoderHiddenStates);
        foreach (var block in _upBlocks)
        {
            long[]? upsampleSize = null;
            if (block.HasUpsampler && forwardUpsampleSize)
            {
                var target = skips[skips.Count - 1 - block.ResnetCount];
                upsampleSize = [target.shape[2], target.shape[3]];
            }
            hidden = block.Forward(hidden, skips, temb, encoderHiddenStates, upsampleSize);
        }
        hidden = F.silu(_convNormOut.call(hidden));
        return SafeConv.Call(_convOut, hidden);
    }

    /// <summary>
    /// diffusers' <c>get_aug_embed</c>, text_time branch: <c>add_embedding(cat(text_embeds, add_time_proj(time_ids.flatten())
    /// .reshape(B, -1)))</c>, the sinusoid with the time projection's flip_sin_to_cos and freq_shift.
    /// </summary>
    private Tensor AugmentedEmbedding(TimestepEmbedding addEmbedding, Tensor? textEmbeds, Tensor? timeIds, long batch, ScalarType dtype, Device device)
    {
        const string needs = "this UNet has addition_embed_type = \"text_time\" (SDXL), which requires";
        if (textEmbeds is null) throw new ArgumentException($"{needs} text_embeds (the pooled text embeddings) in added_cond_kwargs", nameof(textEmbeds));
        if (timeIds is null) throw new ArgumentException($"{needs} time_ids (original size, crop and target size) in added_cond_kwargs", nameof(timeIds));
        if (textEmbeds.dim() != 2 || textEmbeds.shape[0] != batch)
        {
            throw new ArgumentException($"text_embeds must be [{batch}, P], got [{string.Join(", ", textEmbeds.shape)}]", nameof(textEmbeds));
        }
        if (timeIds.dim() != 2 || timeIds.shape[0] != batch)
        {
            throw new ArgumentException($"time_ids must be [{batch}, N], got [{string.Join(", ", timeIds.shape)}]", nameof(timeIds));
        }
        int timeDim = Config.AdditionTimeEmbedDim!.Value;
        long width = textEmbeds.shape[1] + timeIds.shape[1] * timeDim;
        if (width != Config.ProjectionClassEmbeddingsInputDim)
        {
            throw new ArgumentException($"text_embeds [{string.Join(", ", textEmbeds.shape)}] and time_ids [{string.Join(", ", timeIds.shape)}] give " +
                $"{width} features, but projection_class_embeddings_input_dim is {Config.ProjectionClassEmbeddingsInputDim} " +
                $"(= text_embeds width + time ids x addition_time_embed_dim {timeDim})");
        }
        var ids = Placement.IsOn(timeIds, device) ? timeIds : timeIds.to(device);
        var timeEmbeds = TimestepEmbedding.Sinusoidal(ids.flatten(), timeDim, Config.FlipSinToCos, Config.FreqShift).reshape(batch, -1);
        var addEmbeds = cat([Placement.To(textEmbeds, dtype, device), timeEmbeds.to(dtype)], -1);
        return addEmbedding.call(addEmbeds);
    }

    private Tensor TimeProjection(Tensor timestep, long batch, Device device)
    {
        var t = Placement.IsOn(timestep, device) ? timestep : timestep.to(device);
        if (t.dim() == 0) t = t.unsqueeze(0);
        if (t.dim() != 1 || (t.shape[0] != batch && t.shape[0] != 1))
        {
            throw new ArgumentException($"timestep must be a scalar, [1] or [{batch}], got [{string.Join(", ", timestep.shape)}]", nameof(timestep));
        }
        if (t.shape[0] != batch) t = t.expand(batch);
        return TimestepEmbedding.Sinusoidal(t, Config.BlockOutChannels[0], Config.FlipSinToCos, Config.FreqShift);
    }
}
