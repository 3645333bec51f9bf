using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// FluxPipeline's 2x2 latent packing (<c>_pack_latents</c> / <c>_unpack_latents</c>) and the image tokens' position ids
/// (<c>_prepare_latent_image_ids</c>). The policy keeps latents unpacked [B, C, h, w] (the sampler's math is
/// elementwise, so the steps are the same) and packs only around the transformer.
/// </summary>
internal static class FluxLatents
{
    /// <summary>[B, C, h, w] (h, w even) to [B, (h/2)(w/2), 4C].</summary>
    public static Tensor Pack(Tensor latents)
    {
        long b = latents.shape[0], c = latents.shape[1], h = latents.shape[2], w = latents.shape[3];
        if (h % 2 != 0 || w % 2 != 0) throw new ArgumentException($"FLUX packs 2x2 latent patches: the latent size {h}x{w} must be even");
        return latents.view(b, c, h / 2, 2, w / 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h / 2 * (w / 2), c * 4);
    }

    /// <summary>[B, (h/2)(w/2), 4C] back to [B, C, h, w].</summary>
    public static Tensor Unpack(Tensor packed, long h, long w)
    {
        long b = packed.shape[0], c = packed.shape[2] / 4;
        return packed.view(b, h / 2, w / 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w);
    }

    /// <summary>The image tokens' ids [(h/2)(w/2), 3] (float32): 0, row, column of each 2x2 patch.</summary>
    public static Tensor ImageIds(long h, long w, Device device)
    {
        using var scope = NewDisposeScope();
        long rows = h / 2, cols = w / 2;
        var ids = zeros([rows, cols, 3], ScalarType.Float32);
        ids[.., .., 1] = arange(rows, ScalarType.Float32).view(rows, 1).expand(rows, cols);
        ids[.., .., 2] = arange(cols, ScalarType.Float32).view(1, cols).expand(rows, cols);
        return ids.reshape(rows * cols, 3).to(device).MoveToOuterDisposeScope();
    }
}
