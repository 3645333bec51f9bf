using System.Runtime.InteropServices;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards;

/// <summary>
/// Turns [B, 3, H, W] images in [0, 1] into 8-bit RGB the way ddpo-pytorch does
/// (<c>round(x * 255)</c> clamped to [0, 255]) and encodes them as JPEG with SkiaSharp.
/// </summary>
public static class JpegEncoding
{
    /// <summary>The JPEG quality ddpo-pytorch's compressibility rewards use.</summary>
    public const int RewardQuality = 95;

    /// <summary>8-bit RGB pixels, [B, H, W, 3] row-major, from [B, 3, H, W] floats in [0, 1].</summary>
    public static byte[] ToRgbBytes(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
        {
            throw new ArgumentException($"images: expected [B, 3, H, W], got [{string.Join(", ", images.shape)}]");
        }
        using var scope = NewDisposeScope();
        var u8 = (images.detach().cpu().to(ScalarType.Float32) * 255).round().clamp(0, 255)
            .to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous();
        return u8.data<byte>().ToArray();
    }

    /// <summary>Encodes one RGB image (<paramref name="width"/> x <paramref name="height"/> x 3 bytes) as JPEG.</summary>
    public static byte[] Encode(ReadOnlySpan<byte> rgb, int width, int height, int quality = RewardQuality)
    {
        if (rgb.Length != width * height * 3)
        {
            throw new ArgumentException($"rgb: expected {width * height * 3} bytes for {width}x{height} RGB, got {rgb.Length}");
        }
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        int rowBytes = bitmap.RowBytes;
        var row = new byte[rowBytes];
        IntPtr pixels = bitmap.GetPixels();
        for (int y = 0; y < height; y++)
        {
            var src = rgb.Slice(y * width * 3, width * 3);
            for (int x = 0; x < width; x++)
            {
                row[x * 4] = src[x * 3];
                row[x * 4 + 1] = src[x * 3 + 1];
                row[x * 4 + 2] = src[x * 3 + 2];
                row[x * 4 + 3] = 255;
            }
            Marshal.Copy(row, 0, pixels + y * rowBytes, rowBytes);
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, quality)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode a {width}x{height} JPEG");
        return data.ToArray();
    }

    /// <summary>The JPEG size of each image in kilobytes (bytes / 1000), at <paramref name="quality"/>.</summary>
    public static float[] SizesInKilobytes(Tensor images, int quality = RewardQuality)
    {
        var rgb = ToRgbBytes(images);
        int b = (int)images.shape[0], h = (int)images.shape[2], w = (int)images.shape[3];
        int per = h * w * 3;
        var sizes = new float[b];
        Parallel.For(0, b, i => sizes[i] = (float)(Encode(rgb.AsSpan(i * per, per), w, h, quality).Length / 1000.0));
        return sizes;
    }
}
