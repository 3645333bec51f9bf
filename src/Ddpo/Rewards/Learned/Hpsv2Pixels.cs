using Ddpo.Imaging.Resampling;
using static TorchSharp.torch;

namespace Ddpo.Rewards.Learned;

/// <summary>
/// HPSv2's <c>preprocess_val</c> after <c>ToTensor</c> (open_clip/transform.py at 866735e, light_augmentation):
/// <c>ResizeMaxSize(S)</c> = torchvision bicubic (antialiased) resize of the longer side to S with each side
/// <c>round(dim · S / max)</c>, zero padding to S×S (left/top = pad // 2), then <c>MaskAwareNormalize</c> (= Normalize
/// for RGB, so the padding becomes -mean/std). Differentiable.
/// </summary>
internal static class Hpsv2Pixels
{
    /// <summary>Images [B, 3, H, W] in [0, 1] to pixel values [B, 3, S, S] in their dtype and device.</summary>
    public static Tensor Preprocess(Tensor images, int size, double[] mean, double[] std)
    {
        if (images.dim() != 4 || images.shape[1] != 3) throw new ArgumentException($"images: expected [B, 3, H, W], got [{string.Join(", ", images.shape)}]", nameof(images));
        using var scope = NewDisposeScope();
        int h = (int)images.shape[2], w = (int)images.shape[3];
        var (nh, nw) = ResizeTarget.LongestEdge(h, w, size);
        // Upstream resizes and pads only when the scale is not 1; a non-square image whose longer side is already S
        // would then reach the model unpadded and fail, so it is padded here.
        var x = nh == h && nw == w ? images : TensorResize.Resize(images, nh, nw, ResampleFilter.Bicubic, antialias: true);
        int padH = size - nh, padW = size - nw;
        if (padH > 0 || padW > 0)
        {
            x = nn.functional.pad(x, [padW / 2, padW - padW / 2, padH / 2, padH - padH / 2]);
        }
        var m = tensor(mean, ScalarType.Float64).to(x.dtype, x.device).view(1, 3, 1, 1);
        var s = tensor(std, ScalarType.Float64).to(x.dtype, x.device).view(1, 3, 1, 1);
        return ((x - m) / s).MoveToOuterDisposeScope();
    }
}
