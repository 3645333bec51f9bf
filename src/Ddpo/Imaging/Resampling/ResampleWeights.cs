namespace Ddpo.Imaging.Resampling;

/// <summary>
/// The per-output-pixel taps of Pillow's resampler (libImaging/Resample.c <c>precompute_coeffs</c>), which torch's
/// antialiased interpolation (<c>_upsample_bicubic2d_aa</c>, <c>_upsample_bilinear2d_aa</c>) shares: the filter's
/// support grows with the down-scale factor, so reducing always averages every covered source pixel.
/// </summary>
internal static class ResampleWeights
{
    /// <summary>
    /// For each output index: the first source index and the normalised weights of the consecutive source pixels
    /// it reads (double precision, as Pillow computes them).
    /// </summary>
    public static (int Start, double[] Weights)[] Antialiased(int inSize, int outSize, ResampleFilter filter)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outSize, 1);
        double baseSupport = filter == ResampleFilter.Bicubic ? 2.0 : 1.0;
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = baseSupport * filterScale;
        // Pillow multiplies by the reciprocal (not divides): kept for bit-identical weights.
        double ss = 1.0 / filterScale;
        var taps = new (int, double[])[outSize];
        for (int i = 0; i < outSize; i++)
        {
            double center = (i + 0.5) * scale;
            int xmin = Math.Max((int)(center - support + 0.5), 0);
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            var k = new double[xmax];
            double sum = 0.0;
            for (int x = 0; x < xmax; x++)
            {
                k[x] = Kernel(filter, (x + xmin - center + 0.5) * ss, -0.5);
                sum += k[x];
            }
            if (sum != 0.0)
            {
                for (int x = 0; x < xmax; x++) k[x] /= sum;
            }
            taps[i] = (xmin, k);
        }
        return taps;
    }

    /// <summary>
    /// The dense (out, in) matrix of torch's interpolation along one axis (align_corners=False): antialiased = the
    /// taps above; otherwise bilinear (two border-clamped taps) or bicubic with a = -0.75 (four border-clamped taps),
    /// sampling at <c>(i + 0.5) · in / out - 0.5</c>.
    /// </summary>
    public static double[,] Matrix(int inSize, int outSize, ResampleFilter filter, bool antialias)
    {
        var m = new double[outSize, inSize];
        if (antialias)
        {
            var taps = Antialiased(inSize, outSize, filter);
            for (int i = 0; i < outSize; i++)
            {
                var (start, w) = taps[i];
                for (int x = 0; x < w.Length; x++) m[i, start + x] = w[x];
            }
            return m;
        }
        double scale = (double)inSize / outSize;
        for (int i = 0; i < outSize; i++)
        {
            double src = (i + 0.5) * scale - 0.5;
            if (filter == ResampleFilter.Bilinear)
            {
                // torch clamps negative source positions to 0 for bilinear.
                src = Math.Max(src, 0.0);
                int x0 = (int)Math.Floor(src);
                double t = src - x0;
                m[i, Math.Min(x0, inSize - 1)] += 1 - t;
                m[i, Math.Min(x0 + 1, inSize - 1)] += t;
            }
            else
            {
                int x0 = (int)Math.Floor(src);
                double t = src - x0;
                for (int k = -1; k <= 2; k++)
                {
                    m[i, Math.Clamp(x0 + k, 0, inSize - 1)] += Kernel(ResampleFilter.Bicubic, k - t, -0.75);
                }
            }
        }
        return m;
    }

    /// <summary>The filter kernel at <paramref name="x"/> (Keys cubic with parameter <paramref name="a"/>, or the triangle).</summary>
    public static double Kernel(ResampleFilter filter, double x, double a)
    {
        x = Math.Abs(x);
        if (filter == ResampleFilter.Bilinear) return x < 1.0 ? 1.0 - x : 0.0;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }
}
