namespace Ddpo.Imaging.Resampling;

/// <summary>The interpolation filters the reward preprocessors use (PIL's and torch's names for the same kernels).</summary>
internal enum ResampleFilter
{
    /// <summary>Triangle filter, support 1 (PIL <c>BILINEAR</c>, torch <c>bilinear</c>).</summary>
    Bilinear,

    /// <summary>Keys cubic, support 2 (PIL <c>BICUBIC</c> with a = -0.5; torch <c>bicubic</c>: a = -0.5 antialiased, -0.75 otherwise).</summary>
    Bicubic,
}
