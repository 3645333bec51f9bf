using System.Text.Json;
using Ddpo.Imaging;
using Ddpo.Imaging.Jpeg;
using Ddpo.Rewards;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>
/// Our JPEG rewards against PIL's: the fixture (tools/fixtures/make_jpeg_sizes.py, run with Debian's python3-pil)
/// holds lossless images and PIL's <c>Image.fromarray(rgb).save(buf, format="JPEG", quality=95)</c> byte counts.
/// DDPO_JPEG_SIZES_DIR points the tests at another set made by the same script (<c>--random N --out DIR</c>).
/// </summary>
public sealed class PilJpegSizeTests
{
    private static readonly string? OtherSet = Environment.GetEnvironmentVariable("DDPO_JPEG_SIZES_DIR");

    private static string Dir => string.IsNullOrEmpty(OtherSet) ? TestPaths.Fixture("jpeg_sizes") : OtherSet;

    private sealed record Entry(string File, int Width, int Height, int JpegBytes, string? PilJpeg);

    private static List<Entry> Entries()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "sizes.json")));
        var root = doc.RootElement;
        Assert.Equal(JpegEncoding.RewardQuality, root.GetProperty("quality").GetInt32());
        return root.GetProperty("images").EnumerateArray().Select(e => new Entry(
            e.GetProperty("file").GetString()!,
            e.GetProperty("width").GetInt32(),
            e.GetProperty("height").GetInt32(),
            e.GetProperty("jpeg_bytes").GetInt32(),
            e.TryGetProperty("pil_jpeg", out var jpg) ? jpg.GetString() : null)).ToList();
    }

    private static byte[] Pixels(Entry e)
    {
        var (rgb, w, h) = ImageTensor.DecodeRgb(Path.Combine(Dir, e.File));
        Assert.True(w == e.Width && h == e.Height, $"{e.File}: {w}x{h}, sizes.json says {e.Width}x{e.Height}");
        return rgb;
    }

    [Fact]
    public void EveryImageEncodesToPilsByteCount()
    {
        var entries = Entries();
        if (string.IsNullOrEmpty(OtherSet))
        {
            // The committed set: all kinds of image, awkward sizes (1x1, 7x13, 33x17, ...) and one 512x512.
            Assert.True(entries.Count >= 20, $"{entries.Count} images in the fixture");
            Assert.Contains(entries, e => e.Width == 1 && e.Height == 1);
            Assert.Contains(entries, e => e.Width == 512 && e.Height == 512);
        }
        Assert.NotEmpty(entries);
        var wrong = entries
            .Select(e => (e, ours: JpegEncoding.Encode(Pixels(e), e.Width, e.Height).Length))
            .Where(t => t.ours != t.e.JpegBytes)
            .Select(t => $"{t.e.File}: ours {t.ours} bytes, PIL {t.e.JpegBytes}")
            .ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {entries.Count} images differ from PIL:\n" + string.Join("\n", wrong));
    }

    [Fact]
    public void FullJpegFilesEqualPils()
    {
        var withFiles = Entries().Where(e => e.PilJpeg is not null).ToList();
        if (string.IsNullOrEmpty(OtherSet))
        {
            Assert.True(withFiles.Count >= 2, "the fixture should hold PIL's JPEG of at least two images");
        }
        foreach (var e in withFiles)
        {
            var pil = File.ReadAllBytes(Path.Combine(Dir, e.PilJpeg!));
            Assert.Equal(e.JpegBytes, pil.Length);
            Assert.Equal(pil, JpegEncoding.Encode(Pixels(e), e.Width, e.Height));
        }
    }

    [Theory]
    [InlineData(32, 32)]
    [InlineData(64, 64)]
    public async Task RewardsAreMinusAndPlusPilKilobytes(int width, int height)
    {
        var entries = Entries().Where(e => e.Width == width && e.Height == height).ToList();
        Assert.True(entries.Count >= 3, $"{entries.Count} images of {width}x{height} in the fixture");
        // [B, 3, H, W] in [0, 1] whose round(x * 255) gives back the fixture's bytes.
        var planar = new float[entries.Count * 3 * height * width];
        for (int b = 0; b < entries.Count; b++)
        {
            var rgb = Pixels(entries[b]);
            for (int i = 0; i < height * width; i++)
            {
                for (int c = 0; c < 3; c++)
                {
                    planar[(b * 3 + c) * height * width + i] = rgb[i * 3 + c] / 255f;
                }
            }
        }
        using var images = tensor(planar).reshape(entries.Count, 3, height, width);
        var batch = JpegRewardTests.Batch(images);
        var comp = (await new JpegCompressibilityReward().ScoreAsync(batch, CancellationToken.None)).Rewards;
        var incomp = (await new JpegIncompressibilityReward().ScoreAsync(batch, CancellationToken.None)).Rewards;
        for (int b = 0; b < entries.Count; b++)
        {
            float kb = (float)(entries[b].JpegBytes / 1000.0);
            Assert.True(kb == incomp[b], $"{entries[b].File}: jpeg_incompressibility {incomp[b]}, PIL's size {kb} kB");
            Assert.True(-kb == comp[b], $"{entries[b].File}: jpeg_compressibility {comp[b]}, PIL's size {kb} kB");
        }
    }

    [Fact]
    public void ParallelEncodingGivesTheSameBytes()
    {
        var e = Entries().First(x => x.File.StartsWith("noise_white_64x64", StringComparison.Ordinal));
        var rgb = Pixels(e);
        var one = JpegEncoding.Encode(rgb, e.Width, e.Height);
        var many = new byte[32][];
        Parallel.For(0, many.Length, i => many[i] = JpegEncoding.Encode(rgb, e.Width, e.Height));
        Assert.All(many, m => Assert.Equal(one, m));
    }

    [Fact]
    public void BadInputIsRejectedBeforeLibjpegSeesIt()
    {
        var size = Assert.Throws<ArgumentOutOfRangeException>(() => PilJpegEncoder.Encode([], 0, 1, 95));
        Assert.Contains("1..65500", size.Message);
        Assert.Contains("0x1", size.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => PilJpegEncoder.Encode(new byte[3 * 65501], 65501, 1, 95));
        var length = Assert.Throws<ArgumentException>(() => PilJpegEncoder.Encode(new byte[10], 2, 2, 95));
        Assert.Contains("expected 12 bytes", length.Message);
        Assert.Contains("2x2", length.Message);
        var quality = Assert.Throws<ArgumentOutOfRangeException>(() => PilJpegEncoder.Encode(new byte[3], 1, 1, 0));
        Assert.Contains("1..100", quality.Message);
        // The widest image libjpeg takes still encodes.
        Assert.Equal(0xD8, PilJpegEncoder.Encode(new byte[3 * 65500], 65500, 1, 95)[1]);
    }

    [Fact]
    public void AMissingLibjpegNamesTheDebianPackage()
    {
        // LibJpeg.Load is internal (the encoder always loads libjpeg.so.62); a name that cannot exist stands in
        // for a machine without the library.
        var load = typeof(PilJpegEncoder).Assembly.GetType("Ddpo.Imaging.Jpeg.LibJpeg", throwOnError: true)!
            .GetMethod("Load", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;
        var e = Assert.Throws<System.Reflection.TargetInvocationException>(() => load.Invoke(null, ["libjpeg-missing.so.62"]));
        var missing = Assert.IsType<DllNotFoundException>(e.InnerException);
        Assert.Contains("libjpeg-missing.so.62", missing.Message);
        Assert.Contains("libjpeg62-turbo", missing.Message);
    }

    [Fact]
    public void OutputLargerThanTheFirstBufferIsComplete()
    {
        // Quality 100 white noise needs far more than the first buffer (half a byte a pixel + 4096), so it has to grow.
        var rgb = new byte[200 * 150 * 3];
        new Random(5).NextBytes(rgb);
        var jpeg = PilJpegEncoder.Encode(rgb, 200, 150, 100);
        Assert.True(jpeg.Length > 2 * (200 * 150 / 2 + 4096), $"{jpeg.Length} bytes did not overflow the first buffer twice");
        Assert.Equal([0xFF, 0xD8], jpeg[..2]);
        Assert.Equal([0xFF, 0xD9], jpeg[^2..]);
        using var decoded = SkiaSharp.SKBitmap.Decode(jpeg);
        Assert.True(decoded is not null && decoded.Width == 200 && decoded.Height == 150);
    }
}
