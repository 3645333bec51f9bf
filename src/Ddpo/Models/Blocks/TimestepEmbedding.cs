using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Blocks;

/// <summary>diffusers <c>TimestepEmbedding</c>: <c>linear_2(silu(linear_1(x)))</c>.</summary>
internal sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "linear_1")] private readonly Linear _linear1;
    [ComponentName(Name = "linear_2")] private readonly Linear _linear2;

    /// <summary>Creates the layer.</summary>
    public TimestepEmbedding(int inChannels, int embedDim, ModuleOptions o) : base(nameof(TimestepEmbedding))
    {
        _linear1 = o.Linear(inChannels, embedDim);
        _linear2 = o.Linear(embedDim, embedDim);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => _linear2.call(F.silu(_linear1.call(x)));

    /// <summary>
    /// diffusers <c>get_timestep_embedding</c> (scale 1, max period 10000), float32:
    /// frequencies <c>exp(-ln(10000) * i / (half - shift))</c>, output <c>[sin, cos]</c> or <c>[cos, sin]</c>.
    /// </summary>
    public static Tensor Sinusoidal(Tensor timesteps, int dim, bool flipSinToCos, double freqShift)
    {
        int half = dim / 2;
        var exponent = arange(0, half, dtype: ScalarType.Float32, device: timesteps.device) * (-Math.Log(10000.0));
        exponent = exponent / (half - freqShift);
        var freqs = exponent.exp();
        var args = timesteps.to(ScalarType.Float32).unsqueeze(1) * freqs.unsqueeze(0);
        var emb = flipSinToCos ? cat([args.cos(), args.sin()], -1) : cat([args.sin(), args.cos()], -1);
        if (dim % 2 == 1) emb = F.pad(emb, [0, 1, 0, 0], PaddingModes.Constant, 0);
        return emb;
    }
}
