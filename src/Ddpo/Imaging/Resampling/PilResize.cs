namespace Ddpo.Imaging.Resampling;

/// <summary>
/// Pillow's <c>Image.resize((w, h), BICUBIC | BILINEAR)</c> on 8-bit images (reducing_gap None, as transformers'
/// image processors call it), byte for byte: separable passes with <see cref="ResampleWeights.Antialiased"/> taps
/// in 22-bit fixed point, the horizontal pass first and stored as bytes, then the vertical one; an axis whose size
/// does not change is not resampled (Pillow libImaging/Resample.c, <c>ImagingResampleHorizontal_8bpc</c>/<c>Vertical</c>).
/// </summary>
internal static class PilResize
{
    // Pillow's PRECISION_BITS (32 - 8 - 2): headroom for 8-bit values times weights that can exceed 1.
    private const int PrecisionBits = 22;

    /// <summary>
    /// Resizes interleaved 8-bit pixels (<paramref name="height"/> x <paramref name="width"/> x
    /// <paramref name="channels"/>, e.g. RGB = 3, L = 1) to <paramref name="newHeight"/> x <paramref name="newWidth"/>.
    /// </summary>
    public static byte[] Resize(ReadOnlySpan<byte> pixels, int width, int height, int channels, int newWidth, int newHeight, ResampleFilter filter)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(newWidth, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(newHeight, 1);
        if (pixels.Length != width * height * channels)
        {
            throw new ArgumentException($"expected {width}x{height}x{channels} = {width * height * channels} bytes, got {pixels.Length}", nameof(pixels));
        }
        var current = pixels.ToArray();
        int w = width;
        if (newWidth != width)
        {
            current = Pass(current, height, w, channels, newWidth, horizontal: true, filter);
            w = newWidth;
        }
        if (newHeight != height)
        {
            current = Pass(current, height, w, channels, newHeight, horizontal: false, filter);
        }
        return current;
    }

    /// <summary>Pillow's conversion of a weight to fixed point: rounded half away from zero, then truncated.</summary>
    internal static int ToFixed(double weight) =>
        weight < 0 ? (int)(-0.5 + weight * (1 << PrecisionBits)) : (int)(0.5 + weight * (1 << PrecisionBits));

    private static byte[] Pass(byte[] src, int height, int width, int channels, int outSize, bool horizontal, ResampleFilter filter)
    {
        int inSize = horizontal ? width : height;
        var taps = ResampleWeights.Antialiased(inSize, outSize, filter);
        var fixedTaps = taps.Select(t => (t.Start, t.Weights.Select(ToFixed).ToArray())).ToArray();
        int outH = horizontal ? height : outSize, outW = horizontal ? outSize : width;
        var dst = new byte[outH * outW * channels];
        for (int y = 0; y < outH; y++)
        {
            for (int x = 0; x < outW; x++)
            {
                var (start, k) = fixedTaps[horizontal ? x : y];
                for (int c = 0; c < channels; c++)
                {
                    // int accumulator as in Pillow; the rounding offset is half of one output step.
                    int acc = 1 << (PrecisionBits - 1);
                    for (int t = 0; t < k.Length; t++)
                    {
                        int sy = horizontal ? y : start + t, sx = horizontal ? start + t : x;
                        acc += src[(sy * width + sx) * channels + c] * k[t];
                    }
                    dst[(y * outW + x) * channels + c] = Clip8(acc);
                }
            }
        }
        return dst;
    }

    private static byte Clip8(int acc)
    {
        if (acc <= 0) return 0;
        if (acc >= 256 << PrecisionBits) return 255;
        return (byte)(acc >> PrecisionBits);
    }
}
