using Ddpo.Imaging.Resampling;
using Ddpo.Models.Clip;
using static TorchSharp.torch;

namespace Ddpo.Rewards.Learned;

/// <summary>
/// The two ways the CLIP rewards turn images into pixel values: transformers' <c>CLIPImageProcessor</c> on 8-bit
/// images (PIL resize, exact) and torchvision's transforms on float tensors (differentiable).
/// </summary>
internal static class ClipRewardPixels
{
    /// <summary>
    /// transformers' <c>CLIPImageProcessor</c> on interleaved RGB bytes [B, H, W, 3]: PIL resize of the shorter side
    /// (<see cref="PilResize"/>, the configured filter), centre crop at the floored offset, <c>(x.astype(float64) ·
    /// rescale_factor).astype(float32)</c>, then <c>(x - mean) / std</c> in float32. Returns [B, 3, crop, crop] float32 on the CPU.
    /// </summary>
    public static Tensor Processor(byte[] rgb, int count, int height, int width, ClipImageProcessorConfig config)
    {
        if (rgb.Length != count * height * width * 3) throw new ArgumentException($"expected {count}x{height}x{width}x3 bytes, got {rgb.Length}", nameof(rgb));
        var (rh, rw) = ResizeTarget.ShortestEdge(height, width, config.ShortestEdge);
        int crop = config.CropSize, top = CenterCrop.TransformersOffset(rh, crop), left = CenterCrop.TransformersOffset(rw, crop);
        var mean = config.Mean.Select(m => (float)m).ToArray();
        var std = config.Std.Select(s => (float)s).ToArray();
        var table = new float[256];
        for (int v = 0; v < 256; v++) table[v] = (float)(v * config.RescaleFactor);
        var pixels = new float[count * 3 * crop * crop];
        int imageBytes = height * width * 3;
        for (int b = 0; b < count; b++)
        {
            var image = rgb.AsSpan(b * imageBytes, imageBytes);
            var resized = rh == height && rw == width ? image.ToArray() : PilResize.Resize(image, width, height, 3, rw, rh, config.Resample);
            for (int c = 0; c < 3; c++)
            {
                for (int y = 0; y < crop; y++)
                {
                    for (int x = 0; x < crop; x++)
                    {
                        float v = table[resized[((top + y) * rw + left + x) * 3 + c]];
                        pixels[((b * 3 + c) * crop + y) * crop + x] = (v - mean[c]) / std[c];
                    }
                }
            }
        }
        return tensor(pixels, [count, 3, crop, crop], ScalarType.Float32);
    }

    /// <summary>
    /// torchvision's <c>Resize(shortest_edge, filter)</c> (antialiased: the ≥ 0.17 default) → <c>CenterCrop(crop)</c>
    /// (offset rounded half to even) → <c>Normalize(mean, std)</c> on images [B, 3, H, W] in [0, 1]; differentiable,
    /// in the images' dtype and device.
    /// </summary>
    public static Tensor Torchvision(Tensor images, int shortestEdge, int crop, ResampleFilter filter, double[] mean, double[] std)
    {
        if (images.dim() != 4 || images.shape[1] != 3) throw new ArgumentException($"images: expected [B, 3, H, W], got [{string.Join(", ", images.shape)}]", nameof(images));
        using var scope = NewDisposeScope();
        int h = (int)images.shape[2], w = (int)images.shape[3];
        var (rh, rw) = ResizeTarget.ShortestEdge(h, w, shortestEdge);
        var x = TensorResize.Resize(images, rh, rw, filter, antialias: true);
        x = x.narrow(2, CenterCrop.TorchvisionOffset(rh, crop), crop).narrow(3, CenterCrop.TorchvisionOffset(rw, crop), crop);
        var m = tensor(mean, ScalarType.Float64).to(x.dtype, x.device).view(1, 3, 1, 1);
        var s = tensor(std, ScalarType.Float64).to(x.dtype, x.device).view(1, 3, 1, 1);
        return ((x - m) / s).MoveToOuterDisposeScope();
    }
}
