using Ddpo.Data;
using Ddpo.Tests.Support;

namespace Ddpo.Tests.Data;

/// <summary>Helpers shared by the data tests: the prompt lists and the dominant colour of a sprite.</summary>
internal static class SpriteTestSupport
{
    public static string[] ReadList(string name) =>
        File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "src", "Ddpo", "Prompts", "Data", name))
            .Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();

    /// <summary>
    /// The most frequent colour (quantised to 32 levels per channel, returned as the mean of its bin) among the
    /// sprite's opaque pixels, and the fraction of the sprite's opaque pixels in that bin.
    /// </summary>
    public static ((int R, int G, int B) Color, double Share, int OpaquePixels) DominantColor(string sprite)
    {
        using var bitmap = SpriteLibrary.LoadBitmap(sprite);
        var px = bitmap.GetPixelSpan();
        var bins = new Dictionary<int, (long R, long G, long B, int N)>();
        int opaque = 0;
        for (int i = 0; i < px.Length; i += 4)
        {
            if (px[i + 3] < 250) continue;
            opaque++;
            int key = (px[i] >> 3) << 10 | (px[i + 1] >> 3) << 5 | px[i + 2] >> 3;
            var b = bins.GetValueOrDefault(key);
            bins[key] = (b.R + px[i], b.G + px[i + 1], b.B + px[i + 2], b.N + 1);
        }
        var best = bins.Values.MaxBy(b => b.N);
        return (((int)(best.R / best.N), (int)(best.G / best.N), (int)(best.B / best.N)), (double)best.N / opaque, opaque);
    }

    /// <summary>Number of pixels of a planar RGB image within <paramref name="tolerance"/> (per channel) of a colour.</summary>
    public static int CountNear(byte[] planar, int size, (int R, int G, int B) c, int tolerance)
    {
        int n = size * size, count = 0;
        for (int i = 0; i < n; i++)
        {
            if (Math.Abs(planar[i] - c.R) <= tolerance && Math.Abs(planar[n + i] - c.G) <= tolerance && Math.Abs(planar[2 * n + i] - c.B) <= tolerance)
            {
                count++;
            }
        }
        return count;
    }
}
