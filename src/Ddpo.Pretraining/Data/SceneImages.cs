using SkiaSharp;

namespace Ddpo.Data;

/// <summary>Conversions of planar RGB byte images (<c>[3,H,W]</c>) to SkiaSharp bitmaps and preview grids.</summary>
internal static class SceneImages
{
    /// <summary>An opaque RGBA bitmap of a planar RGB image of <paramref name="width"/> x <paramref name="height"/>.</summary>
    public static SKBitmap ToBitmap(ReadOnlySpan<byte> planarRgb, int width, int height)
    {
        int n = width * height;
        if (planarRgb.Length < 3 * n)
        {
            throw new ArgumentException($"{planarRgb.Length} bytes is less than a 3x{height}x{width} image", nameof(planarRgb));
        }
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var px = bitmap.GetPixelSpan();
        for (int i = 0; i < n; i++)
        {
            px[4 * i] = planarRgb[i];
            px[4 * i + 1] = planarRgb[n + i];
            px[4 * i + 2] = planarRgb[2 * n + i];
            px[4 * i + 3] = 255;
        }
        bitmap.NotifyPixelsChanged();
        return bitmap;
    }

    /// <summary>
    /// Interleaved RGB bytes (<c>[H, W, 3]</c>, what the JPEG rewards encode) of a planar RGB image (<c>[3, H, W]</c>).
    /// </summary>
    public static byte[] Interleave(ReadOnlySpan<byte> planarRgb)
    {
        if (planarRgb.Length % 3 != 0)
        {
            throw new ArgumentException($"{planarRgb.Length} bytes is not a planar RGB image (3 planes)", nameof(planarRgb));
        }
        int n = planarRgb.Length / 3;
        var rgb = new byte[planarRgb.Length];
        for (int i = 0; i < n; i++)
        {
            rgb[3 * i] = planarRgb[i];
            rgb[3 * i + 1] = planarRgb[n + i];
            rgb[3 * i + 2] = planarRgb[2 * n + i];
        }
        return rgb;
    }

    /// <summary>
    /// Writes a PNG grid of square planar RGB images (<c>[N,3,size,size]</c> bytes), each enlarged
    /// <paramref name="zoom"/> times with nearest-neighbour sampling, <paramref name="columns"/> per row.
    /// </summary>
    public static void SaveGridPng(string path, ReadOnlySpan<byte> images, int count, int size, int columns = 8, int zoom = 2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(zoom, 1);
        int rows = (count + columns - 1) / columns, cell = size * zoom + 2, one = 3 * size * size;
        using var grid = new SKBitmap(new SKImageInfo(columns * cell, rows * cell, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(grid))
        {
            canvas.Clear(SKColors.White);
            for (int i = 0; i < count; i++)
            {
                using var bitmap = ToBitmap(images.Slice(i * one, one), size, size);
                using var image = SKImage.FromBitmap(bitmap);
                var dest = SKRect.Create(i % columns * cell + 1, i / columns * cell + 1, size * zoom, size * zoom);
                canvas.DrawImage(image, dest, new SKSamplingOptions(SKFilterMode.Nearest));
            }
        }
        using var data = grid.Encode(SKEncodedImageFormat.Png, 100);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllBytes(path, data.ToArray());
    }
}
