using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Blocks;

/// <summary>
/// The attention product of every UNet and VAE attention layer: libtorch's <c>scaled_dot_product_attention</c>, in the
/// inputs' dtype, so that on CUDA fp16/bf16 attention reaches the fused flash / memory-efficient kernels (no
/// [heads, L, L] score matrix is materialised). Only where the model's config asks for it (<c>upcast_attention</c>,
/// SD 2.1) does it compute in float32 and cast the result back, as diffusers' SDPA processor does.
/// </summary>
internal static class AttentionKernel
{
    /// <summary>softmax(q k^T / sqrt(d)) v over [B, heads, L, d] inputs; the result has the inputs' dtype.</summary>
    public static Tensor Compute(Tensor q, Tensor k, Tensor v, bool upcast)
    {
        if (upcast && q.dtype != ScalarType.Float32 && q.dtype != ScalarType.Float64)
        {
            using var q32 = q.to(ScalarType.Float32);
            using var k32 = k.to(ScalarType.Float32);
            using var v32 = v.to(ScalarType.Float32);
            using var a32 = F.scaled_dot_product_attention(q32, k32, v32);
            return a32.to(q.dtype);
        }
        return F.scaled_dot_product_attention(q, k, v);
    }
}
