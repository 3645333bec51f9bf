namespace Ddpo.Rewards.ImageReward;

/// <summary>
/// Pillow's 8-bit bicubic resampler (<c>Image.resize(size, BICUBIC)</c>, libImaging/Resample.c of Pillow 9.x), bit-exact on
/// interleaved uint8 pixels: per axis the Keys cubic (a = −0.5) with support 2·max(scale, 1), weights normalised then
/// rounded to 22-bit fixed point, the sum started at 2²¹ and shifted back with clipping to 0..255; the horizontal pass
/// runs first and is stored as uint8, then the vertical one; an unchanged axis is skipped.
/// </summary>
/// <remarks>
/// Kept here for ImageReward's PIL path; a shared Pillow port may replace it (src/Ddpo/Imaging).
/// </remarks>
internal static class PilBicubicResize
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Resizes <paramref name="pixels"/> (rows of <paramref name="width"/> × <paramref name="channels"/> bytes) to <paramref name="newHeight"/> × <paramref name="newWidth"/>.</summary>
    public static byte[] Resize(byte[] pixels, int height, int width, int channels, int newHeight, int newWidth)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (height <= 0 || width <= 0 || channels <= 0 || newHeight <= 0 || newWidth <= 0)
        {
            throw new ArgumentException($"sizes must be positive: {height}x{width}x{channels} -> {newHeight}x{newWidth}");
        }
        if (pixels.Length != height * width * channels) throw new ArgumentException($"expected {height * width * channels} bytes, got {pixels.Length}", nameof(pixels));
        var current = pixels;
        if (newWidth != width)
        {
            current = Pass(current, height, width, channels, newWidth, horizontal: true);
            width = newWidth;
        }
        if (newHeight != height)
        {
            current = Pass(current, height, width, channels, newHeight, horizontal: false);
        }
        return ReferenceEquals(current, pixels) ? (byte[])pixels.Clone() : current;
    }

    private static byte[] Pass(byte[] src, int height, int width, int channels, int outSize, bool horizontal)
    {
        int inSize = horizontal ? width : height;
        var (bounds, kernelSize, kernels) = Coefficients(inSize, outSize);
        int outH = horizontal ? height : outSize, outW = horizontal ? outSize : width;
        var dst = new byte[outH * outW * channels];
        for (int y = 0; y < outH; y++)
        {
            for (int x = 0; x < outW; x++)
            {
                int o = horizontal ? x : y;
                int min = bounds[2 * o], count = bounds[2 * o + 1], k = o * kernelSize;
                for (int c = 0; c < channels; c++)
                {
                    long sum = 1L << (PrecisionBits - 1);
                    for (int t = 0; t < count; t++)
                    {
                        int sy = horizontal ? y : min + t, sx = horizontal ? min + t : x;
                        sum += src[(sy * width + sx) * channels + c] * (long)kernels[k + t];
                    }
                    dst[(y * outW + x) * channels + c] = Clip8(sum);
                }
            }
        }
        return dst;
    }

    private static byte Clip8(long sum)
    {
        long v = sum >> PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    /// <summary>Resample.c <c>precompute_coeffs</c> and <c>normalize_coeffs_8bpc</c>: per output index its first tap, tap count and fixed-point weights.</summary>
    private static (int[] Bounds, int KernelSize, int[] Kernels) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = 2.0 * filterScale;
        int kernelSize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var kernels = new int[outSize * kernelSize];
        var weights = new double[kernelSize];
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            double inverse = 1.0 / filterScale;
            int min = Math.Max((int)(center - support + 0.5), 0);
            int max = Math.Min((int)(center + support + 0.5), inSize) - min;
            double total = 0;
            for (int t = 0; t < max; t++)
            {
                weights[t] = Cubic((t + min - center + 0.5) * inverse);
                total += weights[t];
            }
            for (int t = 0; t < max; t++)
            {
                double w = total != 0 ? weights[t] / total : weights[t];
                kernels[o * kernelSize + t] = w < 0 ? (int)(-0.5 + w * (1 << PrecisionBits)) : (int)(0.5 + w * (1 << PrecisionBits));
            }
            bounds[2 * o] = min;
            bounds[2 * o + 1] = max;
        }
        return (bounds, kernelSize, kernels);
    }

    /// <summary>Resample.c <c>bicubic_filter</c> (a = −0.5).</summary>
    private static double Cubic(double x)
    {
        const double a = -0.5;
        if (x < 0) x = -x;
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }
}
