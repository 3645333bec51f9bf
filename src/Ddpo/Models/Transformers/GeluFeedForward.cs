using Ddpo.Models.Blocks;
using Ddpo.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>GELU</c> with <c>approximate="tanh"</c>: <c>gelu_tanh(proj(x))</c>; <c>proj</c> is a <see cref="LoraLinear"/>
/// (same state dict) when <c>lora</c> is set, so LoRA can target it (FLUX's feed-forwards).
/// </summary>
internal sealed class TanhGelu : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "proj")] private readonly nn.Module<Tensor, Tensor> _proj;

    /// <summary>Creates the layer.</summary>
    public TanhGelu(int dimIn, int dimOut, ModuleOptions o, bool lora = false) : base(nameof(TanhGelu))
    {
        _proj = lora ? new LoraLinear(dimIn, dimOut, true, o.Device, o.DType) : o.Linear(dimIn, dimOut);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return F.gelu(_proj.call(x), GELU.Approximate.tanh).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// diffusers <c>FeedForward(activation_fn="gelu-approximate")</c>, mult 4: <c>net.0</c> = tanh-GELU projection,
/// <c>net.1</c> = dropout (p 0), <c>net.2</c> = Linear back to the width. With <c>lora</c> both linears are
/// <see cref="LoraLinear"/>s (same state dict).
/// </summary>
internal sealed class GeluFeedForward : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "net")] private readonly ModuleList<nn.Module<Tensor, Tensor>> _net;

    /// <summary>Creates the layer with inner width <c>4 * dim</c>.</summary>
    public GeluFeedForward(int dim, ModuleOptions o, bool lora = false) : base(nameof(GeluFeedForward))
    {
        nn.Module<Tensor, Tensor> down = lora ? new LoraLinear(4 * dim, dim, true, o.Device, o.DType) : o.Linear(4 * dim, dim);
        _net = new ModuleList<nn.Module<Tensor, Tensor>>(new TanhGelu(dim, 4 * dim, o, lora), nn.Dropout(0.0), down);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return _net[2].call(_net[1].call(_net[0].call(x))).MoveToOuterDisposeScope();
    }
}
