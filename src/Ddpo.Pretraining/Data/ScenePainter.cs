using SkiaSharp;

namespace Ddpo.Data;

/// <summary>
/// Paints <see cref="SceneLayout"/>s with SkiaSharp into one reused RGBA bitmap and copies the pixels out
/// as planar RGB bytes (<c>[3,H,W]</c>). Not thread-safe: use one painter per thread.
/// </summary>
internal sealed class ScenePainter : IDisposable
{
    private readonly SKBitmap _bitmap;
    private readonly SKCanvas _canvas;
    private readonly SKPaint _paint = new() { IsAntialias = true };
    private readonly SKPaint _spritePaint = new() { IsAntialias = true };
    private readonly SKPaint _outlinePaint = new() { IsAntialias = true };
    private readonly Dictionary<string, SKImage> _sprites = new();
    private readonly SKSamplingOptions _sampling = new(SKFilterMode.Linear, SKMipmapMode.Linear);

    /// <summary>Creates a painter for square images of <paramref name="size"/> pixels (16..512).</summary>
    public ScenePainter(int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 16);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, 512);
        Size = size;
        _bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        _canvas = new SKCanvas(_bitmap);
    }

    /// <summary>Image edge in pixels.</summary>
    public int Size { get; }

    /// <summary>
    /// Paints <paramref name="layout"/> into <paramref name="destination"/>: 3*Size*Size bytes, planar RGB
    /// (all red, then green, then blue, rows top to bottom). With <paramref name="drawSprites"/> false only the
    /// background is painted.
    /// </summary>
    public void Paint(SceneLayout layout, Span<byte> destination, bool drawSprites = true)
    {
        ArgumentNullException.ThrowIfNull(layout);
        int n = Size * Size;
        if (destination.Length < 3 * n)
        {
            throw new ArgumentException($"destination holds {destination.Length} bytes; a {Size}x{Size} RGB image needs {3 * n}", nameof(destination));
        }
        PaintBackground(layout.Background);
        if (drawSprites)
        {
            foreach (var sprite in layout.Sprites) DrawSprite(sprite);
        }
        _canvas.Flush();
        var rgba = _bitmap.GetPixelSpan();
        var r = destination[..n];
        var g = destination.Slice(n, n);
        var b = destination.Slice(2 * n, n);
        for (int i = 0, j = 0; i < n; i++, j += 4)
        {
            r[i] = rgba[j];
            g[i] = rgba[j + 1];
            b[i] = rgba[j + 2];
        }
    }

    private void DrawSprite(SpritePlacement s)
    {
        var image = SpriteImage(s.Sprite);
        _canvas.Save();
        _canvas.Translate(s.CenterX, s.CenterY);
        _canvas.RotateDegrees(s.RotationDegrees);
        if (s.FlipHorizontal) _canvas.Scale(-1, 1);
        float h = s.Size / 2;
        var rect = new SKRect(-h, -h, h, h);
        if (s.OutlineColor is int outline)
        {
            // The silhouette in the outline colour, drawn at 8 offsets around the sprite.
            using var filter = SKColorFilter.CreateBlendMode(ToSkColor(outline), SKBlendMode.SrcIn);
            _outlinePaint.ColorFilter = filter;
            float w = s.OutlineWidth, d = w * 0.7071f;
            foreach (var (dx, dy) in (ReadOnlySpan<(float, float)>)[(w, 0), (-w, 0), (0, w), (0, -w), (d, d), (d, -d), (-d, d), (-d, -d)])
            {
                _canvas.DrawImage(image, SKRect.Create(rect.Left + dx, rect.Top + dy, rect.Width, rect.Height), _sampling, _outlinePaint);
            }
            _outlinePaint.ColorFilter = null;
        }
        _canvas.DrawImage(image, rect, _sampling, _spritePaint);
        _canvas.Restore();
    }

    private SKImage SpriteImage(string name)
    {
        if (!_sprites.TryGetValue(name, out var image))
        {
            using var bitmap = SpriteLibrary.LoadBitmap(name);
            image = SKImage.FromBitmap(bitmap).ToRasterImage(ensurePixelData: true)
                ?? throw new InvalidDataException($"embedded sprite '{name}' could not be made an image");
            _sprites[name] = image;
        }
        return image;
    }

    private void PaintBackground(BackgroundSpec bg)
    {
        if (bg.Colors.Count == 0)
        {
            throw new ArgumentException($"background {bg.Kind}: needs at least one colour", nameof(bg));
        }
        var colors = bg.Colors.Select(ToSkColor).ToArray();
        SKColor second = colors.Length > 1 ? colors[1] : colors[0];
        float c = Size / 2f;
        switch (bg.Kind)
        {
            case BackgroundKind.Flat:
                _canvas.Clear(colors[0]);
                break;
            case BackgroundKind.LinearGradient:
            {
                var (dx, dy) = Direction(bg.AngleDegrees, bg.Scale / 2);
                using var shader = SKShader.CreateLinearGradient(new SKPoint(c - dx, c - dy), new SKPoint(c + dx, c + dy), Pair(colors), SKShaderTileMode.Mirror);
                FillWith(shader);
                break;
            }
            case BackgroundKind.RadialGradient:
            {
                var centre = new SKPoint(bg.CenterX * Size, bg.CenterY * Size);
                using var shader = SKShader.CreateRadialGradient(centre, Math.Max(1, bg.Scale), Pair(colors), SKShaderTileMode.Mirror);
                FillWith(shader);
                break;
            }
            case BackgroundKind.Stripes:
                _canvas.Clear(colors[0]);
                DrawStripes(second, bg.AngleDegrees, Math.Max(1, bg.Scale));
                break;
            case BackgroundKind.Checkerboard:
                _canvas.Clear(colors[0]);
                DrawChecks(second, bg.AngleDegrees, Math.Max(1, bg.Scale));
                break;
            case BackgroundKind.PixelNoise:
                WriteNoise(bg, colors[0], second, block: 1);
                break;
            case BackgroundKind.BlockNoise:
                WriteNoise(bg, colors[0], second, block: Math.Max(1, (int)bg.Scale));
                break;
            default:
                throw new ArgumentException($"unknown background kind {bg.Kind}", nameof(bg));
        }
    }

    private static SKColor[] Pair(SKColor[] colors) => colors.Length > 1 ? colors : [colors[0], colors[0]];

    private void FillWith(SKShader shader)
    {
        _paint.Shader = shader;
        _canvas.DrawPaint(_paint);
        _paint.Shader = null;
    }

    private void DrawStripes(SKColor color, float angle, float width)
    {
        _paint.Color = color;
        float reach = Size; // covers the rotated square
        _canvas.Save();
        _canvas.RotateDegrees(angle, Size / 2f, Size / 2f);
        for (float x = -reach; x < Size + reach; x += 2 * width)
        {
            _canvas.DrawRect(x, -reach, width, Size + 2 * reach, _paint);
        }
        _canvas.Restore();
    }

    private void DrawChecks(SKColor color, float angle, float cell)
    {
        _paint.Color = color;
        float reach = angle == 0 ? 0 : Size;
        int first = (int)Math.Floor(-reach / cell), last = (int)Math.Ceiling((Size + reach) / cell);
        _canvas.Save();
        _canvas.RotateDegrees(angle, Size / 2f, Size / 2f);
        for (int i = first; i < last; i++)
        {
            for (int j = first; j < last; j++)
            {
                if (((i + j) & 1) != 0) _canvas.DrawRect(i * cell, j * cell, cell, cell, _paint);
            }
        }
        _canvas.Restore();
    }

    // Noise around a linear blend from colour a to colour b along the angle; block > 1 gives blocky noise.
    private void WriteNoise(BackgroundSpec bg, SKColor a, SKColor b, int block)
    {
        var rng = new SplitMix64((ulong)bg.NoiseSeed);
        var pixels = _bitmap.GetPixelSpan();
        var (ux, uy) = Direction(bg.AngleDegrees, 1);
        int amp = Math.Clamp(bg.NoiseAmplitude, 0, 255);
        int blocks = (Size + block - 1) / block;
        Span<byte> rgb = stackalloc byte[3];
        for (int by = 0; by < blocks; by++)
        {
            for (int bx = 0; bx < blocks; bx++)
            {
                // Position along the gradient in [0,1] at the block centre.
                float px = (bx + 0.5f) * block / Size - 0.5f, py = (by + 0.5f) * block / Size - 0.5f;
                float t = Math.Clamp(0.5f + (px * ux + py * uy), 0, 1);
                int dr = rng.Next(2 * amp + 1) - amp;
                int dg = bg.MonochromeNoise ? dr : rng.Next(2 * amp + 1) - amp;
                int db = bg.MonochromeNoise ? dr : rng.Next(2 * amp + 1) - amp;
                rgb[0] = Clamp(a.Red + t * (b.Red - a.Red) + dr);
                rgb[1] = Clamp(a.Green + t * (b.Green - a.Green) + dg);
                rgb[2] = Clamp(a.Blue + t * (b.Blue - a.Blue) + db);
                int y1 = Math.Min(Size, (by + 1) * block), x1 = Math.Min(Size, (bx + 1) * block);
                for (int y = by * block; y < y1; y++)
                {
                    for (int x = bx * block; x < x1; x++)
                    {
                        int k = (y * Size + x) * 4;
                        pixels[k] = rgb[0];
                        pixels[k + 1] = rgb[1];
                        pixels[k + 2] = rgb[2];
                        pixels[k + 3] = 255;
                    }
                }
            }
        }
        _bitmap.NotifyPixelsChanged();
    }

    private static byte Clamp(float v) => (byte)Math.Clamp((int)MathF.Round(v), 0, 255);

    private static (float X, float Y) Direction(float degrees, float length)
    {
        float rad = degrees * MathF.PI / 180;
        return (MathF.Cos(rad) * length, MathF.Sin(rad) * length);
    }

    private static SKColor ToSkColor(int rgb) => new((byte)(rgb >> 16), (byte)(rgb >> 8), (byte)rgb, 255);

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var image in _sprites.Values) image.Dispose();
        _sprites.Clear();
        _paint.Dispose();
        _spritePaint.Dispose();
        _outlinePaint.Dispose();
        _canvas.Dispose();
        _bitmap.Dispose();
    }

    /// <summary>A small fast deterministic generator for pixel noise (independent of <see cref="Random"/>'s algorithm).</summary>
    private struct SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public int Next(int exclusiveMax)
        {
            _state += 0x9E3779B97F4A7C15UL;
            ulong z = _state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (int)((z >> 33) % (ulong)exclusiveMax);
        }
    }
}
