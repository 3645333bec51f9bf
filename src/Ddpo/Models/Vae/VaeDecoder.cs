using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Vae;

/// <summary>diffusers <c>UpDecoderBlock2D</c>: ResNets (no time embedding, eps 1e-6) and an optional up-sampler.</summary>
internal sealed class UpDecoderBlock2D : nn.Module
{
    [ComponentName(Name = "resnets")] private readonly ModuleList<ResnetBlock2D> _resnets;
    [ComponentName(Name = "upsamplers")] private readonly ModuleList<Upsample2D>? _upsamplers;

    /// <summary>Creates the block.</summary>
    public UpDecoderBlock2D(int inChannels, int outChannels, int layers, int groups, bool upsample, ModuleOptions o)
        : base(nameof(UpDecoderBlock2D))
    {
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, null, groups, 1e-6, 1.0, 0.0, o))
            .ToArray());
        _upsamplers = upsample ? new ModuleList<Upsample2D>(new Upsample2D(outChannels, outChannels, o)) : null;
        RegisterComponents();
    }

    /// <summary>Applies the block.</summary>
    public Tensor Forward(Tensor hidden)
    {
        foreach (var resnet in _resnets) hidden = resnet.Forward(hidden, null);
        return _upsamplers is null ? hidden : _upsamplers[0].Forward(hidden);
    }
}

/// <summary>diffusers VAE <c>Decoder</c>: latents to images.</summary>
internal sealed class VaeDecoder : nn.Module
{
    [ComponentName(Name = "conv_in")] private readonly Conv2d _convIn;
    [ComponentName(Name = "mid_block")] private readonly MidBlock2D _midBlock;
    [ComponentName(Name = "up_blocks")] private readonly ModuleList<UpDecoderBlock2D> _upBlocks;
    [ComponentName(Name = "conv_norm_out")] private readonly GroupNorm _convNormOut;
    [ComponentName(Name = "conv_out")] private readonly Conv2d _convOut;

    /// <summary>Creates the decoder.</summary>
    public VaeDecoder(AutoencoderKLConfig c, ModuleOptions o) : base("Decoder")
    {
        var rev = c.BlockOutChannels.Reverse().ToArray();
        int n = rev.Length;
        _convIn = o.Conv(c.LatentChannels, rev[0], 3, padding: 1);
        _midBlock = new MidBlock2D(rev[0], c.NormNumGroups, 1e-6, c.MidBlockAddAttention, o);
        _upBlocks = new ModuleList<UpDecoderBlock2D>(Enumerable.Range(0, n)
            .Select(i => new UpDecoderBlock2D(rev[Math.Max(i - 1, 0)], rev[i], c.LayersPerBlock + 1, c.NormNumGroups, i < n - 1, o))
            .ToArray());
        _convNormOut = o.GroupNorm(c.NormNumGroups, rev[n - 1], 1e-6);
        _convOut = o.Conv(rev[n - 1], c.OutChannels, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>Decodes [B, latent_channels, h, w] latents to [B, out_channels, h*f, w*f] images.</summary>
    public Tensor Forward(Tensor z)
    {
        var hidden = _midBlock.Forward(SafeConv.Call(_convIn, z));
        foreach (var block in _upBlocks) hidden = block.Forward(hidden);
        return SafeConv.Call(_convOut, F.silu(_convNormOut.call(hidden)));
    }
}
