using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Blocks;

/// <summary>diffusers <c>GEGLU</c>: <c>a * gelu(g)</c> where <c>[a, g] = proj(x)</c> split on the last dimension.</summary>
internal sealed class GEGLU : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "proj")] private readonly Linear _proj;

    /// <summary>Creates the layer.</summary>
    public GEGLU(int dimIn, int dimOut, ModuleOptions o) : base(nameof(GEGLU))
    {
        _proj = o.Linear(dimIn, dimOut * 2);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var parts = _proj.call(x).chunk(2, -1);
        return parts[0] * F.gelu(parts[1]);
    }
}

/// <summary>diffusers <c>FeedForward</c> with GEGLU: <c>net.0</c> = GEGLU, <c>net.1</c> = dropout, <c>net.2</c> = Linear.</summary>
internal sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "net")] private readonly ModuleList<nn.Module<Tensor, Tensor>> _net;

    /// <summary>Creates the layer with inner size <c>mult * dim</c>.</summary>
    public FeedForward(int dim, ModuleOptions o, int mult = 4, double dropout = 0.0) : base(nameof(FeedForward))
    {
        int inner = dim * mult;
        _net = new ModuleList<nn.Module<Tensor, Tensor>>(
            new GEGLU(dim, inner, o), nn.Dropout(dropout), o.Linear(inner, dim));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => _net[2].call(_net[1].call(_net[0].call(x)));
}
