using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>PatchEmbed</c> as SD3 uses it: a stride-<c>p</c> convolution <c>proj</c> to tokens [B, h*w, D], plus the
/// persistent sin-cos buffer <c>pos_embed</c> [1, P*P, D] (P = <c>pos_embed_max_size</c>) centre-cropped to the h x w
/// patch grid. The buffer is saved in checkpoints and loaded from them like a weight.
/// </summary>
internal sealed class SD3PatchEmbed : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "proj")] private readonly Conv2d _proj;
    private readonly int _patch;
    private readonly int _maxSize;

    /// <summary>
    /// Creates the layer. <paramref name="computePositions"/> false leaves the buffer uninitialised (it is about to be
    /// loaded; real SD3.5-medium has 226 M entries).
    /// </summary>
    public SD3PatchEmbed(SD3Transformer2DModelConfig c, ModuleOptions o, bool computePositions) : base(nameof(SD3PatchEmbed))
    {
        _patch = c.PatchSize;
        _maxSize = c.PosEmbedMaxSize;
        _proj = nn.Conv2d(c.InChannels, c.InnerDim, c.PatchSize, stride: c.PatchSize, device: o.Device, dtype: o.DType);
        bool meta = o.Device?.type == DeviceType.META;
        var pos = computePositions && !meta
            ? SinCosPositions(c.InnerDim, c.PosEmbedMaxSize, c.SampleSize / c.PatchSize).to(o.DType ?? ScalarType.Float32, o.Device ?? CPU)
            : empty([1, (long)c.PosEmbedMaxSize * c.PosEmbedMaxSize, c.InnerDim], dtype: o.DType ?? ScalarType.Float32, device: o.Device);
        pos.DetachFromDisposeScope();
        register_buffer("pos_embed", pos, persistent: true);
        RegisterComponents();
    }

    /// <summary>
    /// diffusers <c>get_2d_sincos_pos_embed(D, P, base_size)</c> as float32 [1, P*P, D]: token (i, j) gets
    /// [sin(w_j ω), cos(w_j ω), sin(h_i ω), cos(h_i ω)] with grid coordinates <c>k / (P / base)</c> in float32 (numpy's
    /// arithmetic there) and <c>ω_d = 10000^(-d / (D/4))</c>, evaluated in float64 and rounded once.
    /// </summary>
    public static Tensor SinCosPositions(int dim, int gridSize, int baseSize)
    {
        using var scope = NewDisposeScope();
        var grid = arange(gridSize, dtype: ScalarType.Float32) / (float)((double)gridSize / baseSize);
        int quarter = dim / 4;
        var omega = 1.0 / pow(10000.0, arange(quarter, dtype: ScalarType.Float64) / quarter);
        var phase = grid.to(ScalarType.Float64).unsqueeze(1) * omega.unsqueeze(0); // [P, D/4]
        var oneD = cat([phase.sin(), phase.cos()], 1); // [P, D/2]
        long p = gridSize;
        // First half from the column (w) coordinate, second from the row (h): numpy's meshgrid(w, h) order.
        var w = oneD.unsqueeze(0).expand(p, p, dim / 2);
        var h = oneD.unsqueeze(1).expand(p, p, dim / 2);
        var emb = cat([w, h], 2).reshape(1, p * p, dim).to(ScalarType.Float32);
        return emb.MoveToOuterDisposeScope();
    }

    private Tensor PosEmbed => get_buffer("pos_embed")!;

    /// <summary>Patchifies <paramref name="latent"/> [B, C, H, W] (H, W multiples of the patch) and adds the cropped positions.</summary>
    public override Tensor forward(Tensor latent)
    {
        using var scope = NewDisposeScope();
        long h = latent.shape[2] / _patch, w = latent.shape[3] / _patch;
        if (h > _maxSize || w > _maxSize)
        {
            throw new ArgumentException($"the {h} x {w} patch grid exceeds pos_embed_max_size {_maxSize}", nameof(latent));
        }
        var tokens = SafeConv.Call(_proj, latent).flatten(2).transpose(1, 2);
        long top = (_maxSize - h) / 2, left = (_maxSize - w) / 2;
        var pos = PosEmbed.view(1, _maxSize, _maxSize, -1).narrow(1, top, h).narrow(2, left, w).reshape(1, h * w, -1);
        var result = tokens + pos;
        return (result.dtype == tokens.dtype ? result : result.to(tokens.dtype)).MoveToOuterDisposeScope();
    }
}
