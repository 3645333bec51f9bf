namespace Ddpo.Imaging.Resampling;

/// <summary>
/// The two centre-crop offset conventions: transformers' <c>center_crop</c> floors <c>(size - crop) / 2</c>,
/// torchvision's <c>CenterCrop</c> rounds it half to even (<c>int(round(...))</c>); they differ when
/// <c>size - crop ≡ 3 (mod 4)</c>.
/// </summary>
internal static class CenterCrop
{
    /// <summary>transformers' offset of a <paramref name="crop"/>-long window in <paramref name="size"/>.</summary>
    public static int TransformersOffset(int size, int crop)
    {
        Check(size, crop);
        return (size - crop) / 2;
    }

    /// <summary>torchvision's offset of a <paramref name="crop"/>-long window in <paramref name="size"/>.</summary>
    public static int TorchvisionOffset(int size, int crop)
    {
        Check(size, crop);
        return (int)Math.Round((size - crop) / 2.0, MidpointRounding.ToEven);
    }

    private static void Check(int size, int crop)
    {
        // Both libraries pad a crop larger than the image; no reward here needs that.
        if (crop < 1 || crop > size) throw new ArgumentOutOfRangeException(nameof(crop), crop, $"crop must be in 1..{size}");
    }
}
