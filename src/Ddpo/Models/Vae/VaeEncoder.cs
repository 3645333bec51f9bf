using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Vae;

/// <summary>diffusers <c>DownEncoderBlock2D</c>: ResNets (no time embedding, eps 1e-6) and an optional padded down-sampler.</summary>
internal sealed class DownEncoderBlock2D : nn.Module
{
    [ComponentName(Name = "resnets")] private readonly ModuleList<ResnetBlock2D> _resnets;
    [ComponentName(Name = "downsamplers")] private readonly ModuleList<Downsample2D>? _downsamplers;

    /// <summary>Creates the block.</summary>
    public DownEncoderBlock2D(int inChannels, int outChannels, int layers, int groups, bool downsample, ModuleOptions o)
        : base(nameof(DownEncoderBlock2D))
    {
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, null, groups, 1e-6, 1.0, 0.0, o))
            .ToArray());
        _downsamplers = downsample ? new ModuleList<Downsample2D>(new Downsample2D(outChannels, outChannels, 0, o)) : null;
        RegisterComponents();
    }

    /// <summary>Applies the block.</summary>
    public Tensor Forward(Tensor hidden)
    {
        foreach (var resnet in _resnets) hidden = resnet.Forward(hidden, null);
        return _downsamplers is null ? hidden : _downsamplers[0].Forward(hidden);
    }
}

/// <summary>diffusers VAE <c>Encoder</c> (double_z): image to the moments [mean; logvar] of the latent Gaussian.</summary>
internal sealed class VaeEncoder : nn.Module
{
    [ComponentName(Name = "conv_in")] private readonly Conv2d _convIn;
    [ComponentName(Name = "down_blocks")] private readonly ModuleList<DownEncoderBlock2D> _downBlocks;
    [ComponentName(Name = "mid_block")] private readonly MidBlock2D _midBlock;
    [ComponentName(Name = "conv_norm_out")] private readonly GroupNorm _convNormOut;
    [ComponentName(Name = "conv_out")] private readonly Conv2d _convOut;

    /// <summary>Creates the encoder.</summary>
    public VaeEncoder(AutoencoderKLConfig c, ModuleOptions o) : base("Encoder")
    {
        var ch = c.BlockOutChannels;
        int n = ch.Length;
        _convIn = o.Conv(c.InChannels, ch[0], 3, padding: 1);
        _downBlocks = new ModuleList<DownEncoderBlock2D>(Enumerable.Range(0, n)
            .Select(i => new DownEncoderBlock2D(ch[Math.Max(i - 1, 0)], ch[i], c.LayersPerBlock, c.NormNumGroups, i < n - 1, o))
            .ToArray());
        _midBlock = new MidBlock2D(ch[n - 1], c.NormNumGroups, 1e-6, c.MidBlockAddAttention, o);
        _convNormOut = o.GroupNorm(c.NormNumGroups, ch[n - 1], 1e-6);
        _convOut = o.Conv(ch[n - 1], 2 * c.LatentChannels, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>The first convolution's weight (tells the model's dtype and device).</summary>
    public Tensor FirstWeight => _convIn.weight!;

    /// <summary>Encodes [B, C, H, W] images to moments [B, 2 * latent_channels, H/f, W/f].</summary>
    public Tensor Forward(Tensor x)
    {
        var hidden = SafeConv.Call(_convIn, x);
        foreach (var block in _downBlocks) hidden = block.Forward(hidden);
        hidden = _midBlock.Forward(hidden);
        return SafeConv.Call(_convOut, F.silu(_convNormOut.call(hidden)));
    }
}
