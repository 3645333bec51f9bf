using static TorchSharp.torch;

namespace Ddpo.Imaging.Resampling;

/// <summary>
/// torchvision's <c>F.resize</c> on float tensors (torch's <c>interpolate</c>, align_corners=False) as one matrix
/// product per axis, <c>M_h · x · M_wᵀ</c>: differentiable, any device and dtype, no clamping (bicubic overshoots
/// [0, 1] as torch does). Antialiased bicubic/bilinear use Pillow's taps in float; bicubic without antialiasing is
/// torch's a = -0.75 kernel (torchvision &lt; 0.17's tensor default).
/// </summary>
internal static class TensorResize
{
    /// <summary>Resizes the last two axes of <paramref name="images"/> ([..., H, W], floating point) to <paramref name="height"/> x <paramref name="width"/>.</summary>
    public static Tensor Resize(Tensor images, int height, int width, ResampleFilter filter, bool antialias = true)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() < 2) throw new ArgumentException($"images must have at least 2 dimensions, got [{string.Join(", ", images.shape)}]", nameof(images));
        if (!is_floating_point(images)) throw new ArgumentException($"images must be floating point, got {images.dtype}", nameof(images));
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        int inH = (int)images.shape[^2], inW = (int)images.shape[^1];
        using var scope = NewDisposeScope();
        var x = images;
        if (inH != height) x = matmul(AxisMatrix(inH, height, filter, antialias, images), x);
        if (inW != width) x = matmul(x, AxisMatrix(inW, width, filter, antialias, images).t());
        // An unchanged size is returned as a new alias so that callers may dispose it independently.
        return (ReferenceEquals(x, images) ? images.alias() : x).MoveToOuterDisposeScope();
    }

    private static Tensor AxisMatrix(int inSize, int outSize, ResampleFilter filter, bool antialias, Tensor like) =>
        tensor(ResampleWeights.Matrix(inSize, outSize, filter, antialias), ScalarType.Float64).to(like.dtype, like.device);
}
