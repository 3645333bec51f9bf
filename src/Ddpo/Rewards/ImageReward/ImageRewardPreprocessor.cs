using Ddpo.Imaging.Resampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards.ImageReward;

/// <summary>
/// ImageReward's image preprocessing at <see cref="Size"/> px, in its two upstream forms:
/// <list type="bullet">
/// <item><see cref="PreprocessPil"/>: <c>ImageReward._transform</c> on a PIL image (what <c>ImageReward.score</c> and
/// Flow-GRPO's scorer use): torchvision <c>Resize(S, BICUBIC)</c> (= Pillow's bicubic; shorter side → S, longer side
/// <c>int(S·long/short)</c>), <c>CenterCrop(S)</c> at <c>int(round((side − S) / 2))</c> (half to even), <c>ToTensor</c>
/// (uint8 / 255 in float32), <c>Normalize</c> with CLIP's mean and std (BLIP's).</item>
/// <item><see cref="PreprocessTensor"/>: ReFL's training-loop transform (ImageReward/ReFL.py 744-754) on a [0, 1] float
/// tensor, differentiable: the same resize in floating point (torchvision's tensor bicubic with antialias, no clamping),
/// crop and normalisation.</item>
/// </list>
/// </summary>
internal sealed class ImageRewardPreprocessor
{
    /// <summary>BLIP's (= CLIP's) per-channel mean (RGB).</summary>
    public static readonly float[] Mean = [0.48145466f, 0.4578275f, 0.40821073f];

    /// <summary>BLIP's (= CLIP's) per-channel standard deviation (RGB).</summary>
    public static readonly float[] Std = [0.26862954f, 0.26130258f, 0.27577711f];

    /// <summary>A preprocessor to <paramref name="size"/> px (the model's image size).</summary>
    public ImageRewardPreprocessor(int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        Size = size;
    }

    /// <summary>The resized shorter side and the crop side.</summary>
    public int Size { get; }

    /// <summary>torchvision's <c>Resize(int)</c> output size: the shorter side becomes <see cref="Size"/>, the longer one is truncated.</summary>
    public (int Height, int Width) ResizedSize(long height, long width) => ResizeTarget.ShortestEdge(checked((int)height), checked((int)width), Size);

    /// <summary>torchvision's <c>CenterCrop</c> offset: <c>int(round((side − crop) / 2))</c>, round half to even.</summary>
    public int CropOffset(int side) => CenterCrop.TorchvisionOffset(side, Size);

    /// <summary>
    /// The PIL path: images [B, 3, H, W], uint8 or float in [0, 1] (then quantised as Flow-GRPO does:
    /// <c>(x · 255).round().clamp(0, 255)</c>), to pixel values [B, 3, S, S] float32 on the CPU. Not differentiable.
    /// </summary>
    public Tensor PreprocessPil(Tensor images)
    {
        Check(images);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var bytes = images.dtype == ScalarType.Byte
            ? images.cpu()
            : (images.cpu().to(ScalarType.Float32) * 255).round().clamp(0, 255).to(ScalarType.Byte);
        // Interleaved HWC rows, as a PIL RGB image holds them.
        var hwc = bytes.permute(0, 2, 3, 1).contiguous();
        int b = (int)hwc.shape[0], h = (int)hwc.shape[1], w = (int)hwc.shape[2];
        var all = hwc.data<byte>().ToArray();
        var (rh, rw) = ResizedSize(h, w);
        int top = CropOffset(rh), left = CropOffset(rw);
        var values = new float[b * 3 * Size * Size];
        for (int n = 0; n < b; n++)
        {
            var image = all.AsSpan(n * h * w * 3, h * w * 3).ToArray();
            var resized = PilResize.Resize(image, w, h, 3, rw, rh, ResampleFilter.Bicubic);
            for (int c = 0; c < 3; c++)
            {
                for (int y = 0; y < Size; y++)
                {
                    for (int x = 0; x < Size; x++)
                    {
                        // ToTensor's float32 division by 255, then Normalize's (x - mean) / std in float32.
                        float v = resized[((top + y) * rw + left + x) * 3 + c] / 255f;
                        values[((n * 3 + c) * Size + y) * Size + x] = (v - Mean[c]) / Std[c];
                    }
                }
            }
        }
        return tensor(values, [b, 3, Size, Size]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// ReFL's tensor path: images [B, 3, H, W] float in [0, 1] (any device, graph kept) to pixel values [B, 3, S, S] float32.
    /// </summary>
    public Tensor PreprocessTensor(Tensor images)
    {
        Check(images);
        if (!is_floating_point(images)) throw new ArgumentException($"images must be floating point in [0, 1], got {images.dtype}", nameof(images));
        using var scope = NewDisposeScope();
        var x = images.to(ScalarType.Float32);
        var (rh, rw) = ResizedSize(x.shape[2], x.shape[3]);
        if (rh != x.shape[2] || rw != x.shape[3])
        {
            x = TensorResize.Resize(x, rh, rw, ResampleFilter.Bicubic);
        }
        x = x.narrow(2, CropOffset(rh), Size).narrow(3, CropOffset(rw), Size);
        var mean = tensor(Mean, [1, 3, 1, 1]).to(x.device);
        var std = tensor(Std, [1, 3, 1, 1]).to(x.device);
        return ((x - mean) / std).MoveToOuterDisposeScope();
    }

    private static void Check(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.shape[1] != 3)
        {
            throw new ArgumentException($"images must be [batch, 3, height, width], got [{string.Join(", ", images.shape)}]", nameof(images));
        }
    }
}
