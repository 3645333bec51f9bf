using SkiaSharp;

namespace Ddpo.Data;

/// <summary>
/// Renders the sprites of <see cref="SpriteCatalog"/> from a colour emoji font (Noto Color Emoji) into
/// small square RGBA PNGs, each cropped tightly around the emoji. Only needed to regenerate the committed
/// sprites (<c>tools/render-sprites.sh</c>); the library itself reads the embedded PNGs.
/// </summary>
internal static class SpriteRenderer
{
    /// <summary>The edge of the committed sprites, in pixels.</summary>
    public const int DefaultSpriteSize = 48;

    private const float RenderFontSize = 109f; // the size of Noto Color Emoji's bitmap strike
    private const int Canvas = 256;

    /// <summary>
    /// Renders every sprite of <see cref="SpriteCatalog.AllSprites"/> to <c>outDir/NAME.png</c>.
    /// Throws when the font is missing or lacks one of the emoji.
    /// </summary>
    /// <returns>The files written.</returns>
    public static IReadOnlyList<string> RenderAll(string fontPath, string outDir, int spriteSize = DefaultSpriteSize)
    {
        if (!File.Exists(fontPath))
        {
            throw new FileNotFoundException($"{fontPath}: emoji font not found (Debian: apt-get install fonts-noto-color-emoji)", fontPath);
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(spriteSize, 8);
        using var typeface = SKTypeface.FromFile(fontPath)
            ?? throw new InvalidDataException($"{fontPath}: not a font SkiaSharp can read");
        Directory.CreateDirectory(outDir);
        var written = new List<string>();
        foreach (var (name, emoji) in SpriteCatalog.AllSprites())
        {
            using var sprite = Render(typeface, emoji, spriteSize, $"{fontPath}: sprite '{name}'");
            using var data = sprite.Encode(SKEncodedImageFormat.Png, 100);
            var path = Path.Combine(outDir, name + ".png");
            File.WriteAllBytes(path, data.ToArray());
            written.Add(path);
        }
        return written;
    }

    /// <summary>Renders one emoji, cropped to its opaque pixels, centred in a transparent square of <paramref name="spriteSize"/>.</summary>
    public static SKBitmap Render(SKTypeface typeface, string emoji, int spriteSize, string what = "emoji")
    {
        var glyphs = typeface.GetGlyphs(emoji);
        if (glyphs.Length == 0 || glyphs.Any(g => g == 0))
        {
            throw new InvalidDataException($"{what}: the font has no glyph for U+{string.Join(" U+", CodePoints(emoji))}");
        }
        using var big = new SKBitmap(new SKImageInfo(Canvas, Canvas, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(big))
        using (var font = new SKFont(typeface, RenderFontSize))
        using (var paint = new SKPaint { IsAntialias = true })
        {
            canvas.Clear(SKColors.Transparent);
            canvas.DrawText(emoji, Canvas * 0.1f, Canvas * 0.75f, font, paint);
        }
        var box = OpaqueBounds(big) ?? throw new InvalidDataException($"{what}: the font drew no visible pixels for U+{string.Join(" U+", CodePoints(emoji))}");
        int side = Math.Max(box.Width, box.Height);
        float pad = side * 0.02f;
        var src = SKRect.Create(box.MidX - side / 2f - pad, box.MidY - side / 2f - pad, side + 2 * pad, side + 2 * pad);

        var sprite = new SKBitmap(new SKImageInfo(spriteSize, spriteSize, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        using var image = SKImage.FromBitmap(big);
        using (var canvas = new SKCanvas(sprite))
        {
            canvas.Clear(SKColors.Transparent);
            canvas.DrawImage(image, src, SKRect.Create(spriteSize, spriteSize), new SKSamplingOptions(SKCubicResampler.Mitchell));
        }
        return sprite;
    }

    private static SKRectI? OpaqueBounds(SKBitmap bitmap)
    {
        int minX = int.MaxValue, minY = int.MaxValue, maxX = -1, maxY = -1;
        var pixels = bitmap.GetPixelSpan();
        for (int y = 0; y < bitmap.Height; y++)
        {
            for (int x = 0; x < bitmap.Width; x++)
            {
                if (pixels[(y * bitmap.Width + x) * 4 + 3] <= 8) continue;
                minX = Math.Min(minX, x); maxX = Math.Max(maxX, x);
                minY = Math.Min(minY, y); maxY = Math.Max(maxY, y);
            }
        }
        return maxX < 0 ? null : new SKRectI(minX, minY, maxX + 1, maxY + 1);
    }

    private static IEnumerable<string> CodePoints(string s)
    {
        for (int i = 0; i < s.Length; i += char.IsSurrogatePair(s, i) ? 2 : 1)
        {
            yield return char.ConvertToUtf32(s, i).ToString("X4");
        }
    }
}
