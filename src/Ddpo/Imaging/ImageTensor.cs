using Ddpo.Imaging.Jpeg;
using SkiaSharp;
using static TorchSharp.torch;
using Ddpo.Runtime;

namespace Ddpo.Imaging;

/// <summary>
/// Converts between image tensors ([3, H, W] float in [0, 1]) and 8-bit bitmaps, PNG and JPEG files. PNG goes
/// through SkiaSharp; JPEG is written only by <see cref="PilJpegEncoder"/> (PIL's bytes, as the JPEG rewards measure).
/// </summary>
public static class ImageTensor
{
    /// <summary>
    /// Quantises images [B, 3, H, W] in [0, 1] to interleaved RGB bytes [B, H, W, 3] (round(x * 255),
    /// clamped), the way the paper's JPEG rewards and PIL's <c>ToPILImage</c> do.
    /// </summary>
    public static byte[] ToRgbBytes(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
        {
            throw new ArgumentException($"images: expected [B, 3, H, W], got [{string.Join(", ", images.shape)}]");
        }
        using var scope = NewDisposeScope();
        return (images.detach().cpu().to(ScalarType.Float32) * 255).round().clamp(0, 255)
            .to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous().data<byte>().ToArray();
    }

    /// <summary>An opaque RGBA bitmap from interleaved RGB bytes of one <paramref name="width"/> x <paramref name="height"/> image.</summary>
    public static SKBitmap ToBitmap(ReadOnlySpan<byte> rgb, int width, int height)
    {
        if (rgb.Length != width * height * 3)
        {
            throw new ArgumentException($"rgb: expected {width * height * 3} bytes for {width}x{height} RGB, got {rgb.Length}");
        }
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
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
            System.Runtime.InteropServices.Marshal.Copy(row, 0, pixels + y * rowBytes, rowBytes);
        }
        return bitmap;
    }

    /// <summary>Encodes interleaved RGB bytes of one image as PNG (SkiaSharp; PNG is lossless, so any encoder will do).</summary>
    public static byte[] EncodePng(ReadOnlySpan<byte> rgb, int width, int height)
    {
        using var bitmap = ToBitmap(rgb, width, height);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode a {width}x{height} PNG image");
        return data.ToArray();
    }

    /// <summary>An opaque RGBA bitmap of an image tensor [3, H, W] in [0, 1] (quantised as <see cref="ToRgbBytes"/>).</summary>
    public static SKBitmap ToBitmap(Tensor image)
    {
        var (rgb, width, height) = ImageRgb(image);
        return ToBitmap(rgb, width, height);
    }

    /// <summary>Encodes an image tensor as PNG bytes.</summary>
    public static byte[] EncodePng(Tensor image)
    {
        var (rgb, width, height) = ImageRgb(image);
        return EncodePng(rgb, width, height);
    }

    private static (byte[] Rgb, int Width, int Height) ImageRgb(Tensor image)
    {
        if (image.dim() != 3 || image.shape[0] != 3)
        {
            throw new ArgumentException($"expected an image tensor [3, H, W], got [{string.Join(", ", image.shape)}]");
        }
        return (ToRgbBytes(image.unsqueeze(0)), (int)image.shape[2], (int)image.shape[1]);
    }

    /// <summary>Writes an image tensor as a PNG file (atomically).</summary>
    public static void SavePng(Tensor image, string path)
    {
        AtomicFile.WriteAllBytes(path, EncodePng(image));
    }

    /// <summary>Decodes a PNG/JPEG file to [3, H, W] float32 in [0, 1].</summary>
    public static Tensor Load(string path)
    {
        var (rgb, w, h) = DecodeRgb(path);
        using var scope = NewDisposeScope();
        return (tensor(rgb).reshape(h, w, 3).permute(2, 0, 1).to(ScalarType.Float32) / 255).MoveToOuterDisposeScope();
    }

    /// <summary>Decodes a PNG/JPEG file to interleaved 8-bit RGB (<c>[H, W, 3]</c>, alpha dropped).</summary>
    public static (byte[] Rgb, int Width, int Height) DecodeRgb(string path)
    {
        using var decoded = SKBitmap.Decode(path) ?? throw new InvalidDataException($"{path}: not a decodable image");
        using var bitmap = decoded.Copy(SKColorType.Rgba8888);
        int w = bitmap.Width, h = bitmap.Height;
        var bytes = bitmap.Bytes;
        var rgb = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++)
        {
            rgb[i * 3] = bytes[i * 4];
            rgb[i * 3 + 1] = bytes[i * 4 + 1];
            rgb[i * 3 + 2] = bytes[i * 4 + 2];
        }
        return (rgb, w, h);
    }

    /// <summary>
    /// Lays images [N, 3, H, W] out in a grid of <paramref name="columns"/> columns with a
    /// <paramref name="padding"/>-pixel white gap; returns [3, H', W'].
    /// </summary>
    public static Tensor Grid(Tensor images, int columns, int padding = 2)
    {
        using var scope = NewDisposeScope();
        long n = images.shape[0], h = images.shape[2], w = images.shape[3];
        long rows = (n + columns - 1) / columns;
        var grid = ones(3, rows * (h + padding) + padding, columns * (w + padding) + padding);
        for (long i = 0; i < n; i++)
        {
            long r = i / columns, c = i % columns;
            long y = padding + r * (h + padding), x = padding + c * (w + padding);
            grid[TensorIndex.Colon, TensorIndex.Slice(y, y + h), TensorIndex.Slice(x, x + w)] = images[i].cpu().to(ScalarType.Float32);
        }
        return grid.MoveToOuterDisposeScope();
    }
}
