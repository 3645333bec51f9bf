using static TorchSharp.torch;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>FluxPosEmbed</c> (theta 10000) and <c>apply_rotary_emb</c> (<c>use_real</c>, unbind dim -1): rotary
/// position embeddings over the three id axes of each token. Per axis i with width d_i the frequencies
/// <c>theta^(-2k/d_i)</c> are float64 (as diffusers on CPU/CUDA), multiplied by the float32 position, and cos/sin are
/// repeat-interleaved by 2 and returned in float32, concatenated over the axes to [L, head_dim].
/// </summary>
internal static class FluxPosEmbed
{
    private const double Theta = 10000.0;

    /// <summary>The (cos, sin) tables [L, sum(axesDims)] in float32 for <paramref name="ids"/> [L, axes].</summary>
    public static (Tensor Cos, Tensor Sin) Compute(Tensor ids, IReadOnlyList<int> axesDims)
    {
        if (ids.dim() != 2 || ids.shape[1] != axesDims.Count)
        {
            throw new ArgumentException($"ids must be [L, {axesDims.Count}], got [{string.Join(", ", ids.shape)}]", nameof(ids));
        }
        using var scope = NewDisposeScope();
        // diffusers: pos = ids.float(); the outer product with the float64 frequencies is float64.
        var pos = ids.to(ScalarType.Float32).to(ScalarType.Float64);
        var cosParts = new Tensor[axesDims.Count];
        var sinParts = new Tensor[axesDims.Count];
        for (int i = 0; i < axesDims.Count; i++)
        {
            int dim = axesDims[i];
            var exponent = arange(0, dim, 2, dtype: ScalarType.Float64, device: ids.device) / dim;
            var freqs = 1.0 / pow(Theta, exponent);
            var angles = outer(pos[.., i], freqs);
            cosParts[i] = angles.cos().repeat_interleave(2, 1).to(ScalarType.Float32);
            sinParts[i] = angles.sin().repeat_interleave(2, 1).to(ScalarType.Float32);
        }
        var cosT = cat(cosParts, -1);
        var sinT = cat(sinParts, -1);
        return (cosT.MoveToOuterDisposeScope(), sinT.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Rotates <paramref name="x"/> [B, H, L, D] by the tables [L, D]: channel pairs (2k, 2k+1) are (real, imag);
    /// <c>x * cos + (-imag, real) * sin</c>, computed in float32 (as diffusers, even for a float64 model) and cast back.
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var pairs = x.reshape([.. x.shape[..^1], -1, 2]);
        var real = pairs.select(-1, 0);
        var imag = pairs.select(-1, 1);
        var rotated = stack([-imag, real], -1).flatten(3);
        var c = cos.to(x.device).unsqueeze(0).unsqueeze(0);
        var s = sin.to(x.device).unsqueeze(0).unsqueeze(0);
        var output = (x.to(ScalarType.Float32) * c + rotated.to(ScalarType.Float32) * s).to(x.dtype);
        return output.MoveToOuterDisposeScope();
    }
}
