using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>
/// Tensor version of transformers' <c>CLIPImageProcessor</c> (what <c>CLIPProcessor</c> does to images):
/// resize so the shorter side is <see cref="Size"/> (bicubic, antialiased; the longer side becomes
/// <c>floor(Size · long / short)</c>), centre-crop to <see cref="CropSize"/> (offset
/// <c>floor((side - crop) / 2)</c>), then normalise with CLIP's mean and standard deviation.
/// </summary>
/// <remarks>
/// Not bit-identical to the Python pipeline: that one quantises to uint8 and resizes with PIL, while
/// this one stays in floating point and uses libtorch's antialiased bicubic filter (same kernel,
/// a = -0.5, different rounding). Expect differences of the order of 1/255 in pixel values.
/// </remarks>
internal sealed class ClipImagePreprocessor
{
    /// <summary>CLIP's per-channel mean (RGB).</summary>
    public static readonly double[] ClipMean = [0.48145466, 0.4578275, 0.40821073];

    /// <summary>CLIP's per-channel standard deviation (RGB).</summary>
    public static readonly double[] ClipStd = [0.26862954, 0.26130258, 0.27577711];

    /// <summary>Creates a preprocessor; the defaults are those of every OpenAI CLIP model at 224 px.</summary>
    public ClipImagePreprocessor(int size = 224, int cropSize = 224)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size), size, "size must be positive");
        if (cropSize <= 0 || cropSize > size)
        {
            throw new ArgumentOutOfRangeException(nameof(cropSize), cropSize, $"crop size must be in 1..{size} (the resized shorter side)");
        }
        Size = size;
        CropSize = cropSize;
    }

    /// <summary>Length of the shorter side after resizing (<c>size.shortest_edge</c>).</summary>
    public int Size { get; }

    /// <summary>Side of the square centre crop (<c>crop_size</c>).</summary>
    public int CropSize { get; }

    /// <summary>
    /// Images [B, 3, H, W] with values in [0, 1] (RGB) to pixel values [B, 3, <see cref="CropSize"/>,
    /// <see cref="CropSize"/>] in float32 on the images' device. Differentiable.
    /// </summary>
    public Tensor Preprocess(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.shape[1] != 3)
        {
            throw new ArgumentException($"images must be [batch, 3, height, width], got [{string.Join(", ", images.shape)}]", nameof(images));
        }
        if (!torch.is_floating_point(images))
        {
            throw new ArgumentException($"images must be floating point in [0, 1], got {images.dtype}", nameof(images));
        }
        using var scope = NewDisposeScope();
        var x = images.to(ScalarType.Float32);
        long h = x.shape[2], w = x.shape[3];
        var (newH, newW) = ResizedSize(h, w);
        if (newH != h || newW != w)
        {
            x = nn.functional.interpolate(x, [newH, newW], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true)
                .clamp(0.0, 1.0);
        }
        long top = (newH - CropSize) / 2, left = (newW - CropSize) / 2;
        x = x.narrow(2, top, CropSize).narrow(3, left, CropSize);
        var mean = tensor(ClipMean, ScalarType.Float32, x.device).view(1, 3, 1, 1);
        var std = tensor(ClipStd, ScalarType.Float32, x.device).view(1, 3, 1, 1);
        return ((x - mean) / std).MoveToOuterDisposeScope();
    }

    /// <summary>The size after the shorter-side resize: shorter side <see cref="Size"/>, longer side truncated as transformers does.</summary>
    public (long Height, long Width) ResizedSize(long height, long width)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"image size {height}x{width} is empty");
        return height <= width
            ? (Size, (long)Math.Floor((double)Size * width / height))
            : ((long)Math.Floor((double)Size * height / width), Size);
    }
}
