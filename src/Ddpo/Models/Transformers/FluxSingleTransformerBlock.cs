using Ddpo.Models.Lora;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>FluxSingleTransformerBlock</c> (single stream, mlp ratio 4) on the concatenated text + image tokens:
/// <c>x + gate * proj_out(cat(attn(h), gelu_tanh(proj_mlp(h))))</c> with <c>h = AdaLayerNormZeroSingle(x)</c>.
/// <c>proj_mlp</c> and <c>proj_out</c> are LoRA-capable; half-precision output is clipped to the float16 range.
/// </summary>
internal sealed class FluxSingleTransformerBlock : nn.Module
{
    [ComponentName(Name = "norm")] private readonly AdaLayerNormZeroSingle _norm;
    [ComponentName(Name = "proj_mlp")] private readonly LoraLinear _projMlp;
    [ComponentName(Name = "proj_out")] private readonly LoraLinear _projOut;
    [ComponentName(Name = "attn")] private readonly FluxAttention _attn;

    /// <summary>Creates the block.</summary>
    public FluxSingleTransformerBlock(int dim, int heads, int headDim, Device? device, ScalarType? dtype) : base(nameof(FluxSingleTransformerBlock))
    {
        int mlp = 4 * dim;
        _norm = new AdaLayerNormZeroSingle(dim, device, dtype);
        _projMlp = new LoraLinear(dim, mlp, true, device, dtype);
        _projOut = new LoraLinear(dim + mlp, dim, true, device, dtype);
        _attn = new FluxAttention(dim, heads, headDim, joint: false, device, dtype);
        RegisterComponents();
    }

    /// <summary>One block on the tokens <paramref name="x"/> [B, L, dim] with RoPE tables [L, head_dim].</summary>
    public Tensor Forward(Tensor x, Tensor temb, Tensor ropeCos, Tensor ropeSin)
    {
        using var scope = NewDisposeScope();
        var (h, gate) = _norm.Forward(x, temb);
        var mlp = F.gelu(_projMlp.call(h), TorchSharp.Modules.GELU.Approximate.tanh);
        var attn = _attn.Forward(h, null, ropeCos, ropeSin).Hidden;
        var output = x + gate.unsqueeze(1) * _projOut.call(cat([attn, mlp], 2));
        if (output.dtype == ScalarType.Float16) output = output.clip(-65504, 65504);
        return output.MoveToOuterDisposeScope();
    }
}
