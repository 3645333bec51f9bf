namespace Ddpo.Imaging.Resampling;

/// <summary>Output sizes of the resize conventions the reward preprocessors use.</summary>
internal static class ResizeTarget
{
    /// <summary>
    /// transformers' <c>shortest_edge</c> and torchvision's <c>Resize(int)</c>: the shorter side becomes
    /// <paramref name="size"/>, the longer <c>int(size · long / short)</c> (truncated).
    /// </summary>
    public static (int Height, int Width) ShortestEdge(int height, int width, int size)
    {
        Check(height, width, size);
        int longSide = (int)((double)size * Math.Max(height, width) / Math.Min(height, width));
        return height <= width ? (size, longSide) : (longSide, size);
    }

    /// <summary>
    /// HPSv2's <c>ResizeMaxSize</c>: the longer side becomes <paramref name="size"/>, each side
    /// <c>round(dim · (size / max))</c> with Python's round (half to even).
    /// </summary>
    public static (int Height, int Width) LongestEdge(int height, int width, int size)
    {
        Check(height, width, size);
        double scale = size / (double)Math.Max(height, width);
        return ((int)Math.Round(height * scale, MidpointRounding.ToEven), (int)Math.Round(width * scale, MidpointRounding.ToEven));
    }

    private static void Check(int height, int width, int size)
    {
        if (height < 1 || width < 1) throw new ArgumentException($"image size {height}x{width} is empty");
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
    }
}
