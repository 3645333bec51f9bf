using SkiaSharp;
using static TorchSharp.torch;

namespace Ddpo.Imaging;

/// <summary>Converts between image tensors ([3, H, W] float in [0, 1]) and 8-bit bitmaps, PNG and JPEG files.</summary>
public static class ImageTensor
{
    /// <summary>
    /// Quantises an image [3, H, W] in [0, 1] to RGBA8 bytes (round(x * 255), clamped), the way the
    /// paper's JPEG rewards and PIL's <c>ToPILImage</c> do.
    /// </summary>
    public static SKBitmap ToBitmap(Tensor image)
    {
        if (image.dim() != 3 || image.shape[0] != 3)
        {
            throw new ArgumentException($"expected an image tensor [3, H, W], got [{string.Join(", ", image.shape)}]");
        }
        int h = (int)image.shape[1], w = (int)image.shape[2];
        byte[] rgb;
        using (var scope = NewDisposeScope())
        {
            rgb = (image.detach().cpu().to(ScalarType.Float32) * 255).round().clamp(0, 255)
                .to(ScalarType.Byte).permute(1, 2, 0).contiguous().data<byte>().ToArray();
        }
        var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var pixels = new byte[w * h * 4];
        for (int i = 0, j = 0; i < w * h; i++, j += 3)
        {
            pixels[i * 4] = rgb[j];
            pixels[i * 4 + 1] = rgb[j + 1];
            pixels[i * 4 + 2] = rgb[j + 2];
            pixels[i * 4 + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        return bitmap;
    }

    /// <summary>Encodes an image tensor as PNG bytes.</summary>
    public static byte[] EncodePng(Tensor image) => Encode(image, SKEncodedImageFormat.Png, 100);

    /// <summary>Encodes an image tensor as JPEG bytes at <paramref name="quality"/>.</summary>
    public static byte[] EncodeJpeg(Tensor image, int quality = 95) => Encode(image, SKEncodedImageFormat.Jpeg, quality);

    private static byte[] Encode(Tensor image, SKEncodedImageFormat format, int quality)
    {
        using var bitmap = ToBitmap(image);
        using var data = bitmap.Encode(format, quality)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode a {format} image");
        return data.ToArray();
    }

    /// <summary>Writes an image tensor as a PNG file (atomically).</summary>
    public static void SavePng(Tensor image, string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, EncodePng(image));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Decodes a PNG/JPEG file to [3, H, W] float32 in [0, 1].</summary>
    public static Tensor Load(string path)
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
        using var scope = NewDisposeScope();
        return (tensor(rgb).reshape(h, w, 3).permute(2, 0, 1).to(ScalarType.Float32) / 255).MoveToOuterDisposeScope();
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
