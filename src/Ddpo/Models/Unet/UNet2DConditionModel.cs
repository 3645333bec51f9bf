using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Unet;

/// <summary>
/// diffusers <c>UNet2DConditionModel</c> for Stable Diffusion 1.x / 2.x: predicts the noise (or v) for a
/// noisy sample, a timestep and text embeddings. Submodule names equal diffusers' state-dict names.
/// </summary>
internal sealed class UNet2DConditionModel : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    [ComponentName(Name = "conv_in")] private readonly Conv2d _convIn;
    [ComponentName(Name = "time_embedding")] private readonly TimestepEmbedding _timeEmbedding;
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
    public override Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates)
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

        var hidden = _convIn.call(sample);
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
        return _convOut.call(hidden);
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
