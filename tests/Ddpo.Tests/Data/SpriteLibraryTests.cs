using Ddpo.Data;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Data;

public class SpriteLibraryTests
{
    [Fact]
    public void CatalogCoversExactlyThePromptLists()
    {
        Assert.Equal(SpriteTestSupport.ReadList("simple_animals.txt"), SpriteCatalog.AnimalNames);
        Assert.Equal(SpriteTestSupport.ReadList("activities.txt"), SpriteCatalog.ActivityNames);
        Assert.Equal(45, SpriteCatalog.AnimalNames.Count);
    }

    [Fact]
    public void EveryAnimalAndActivityHasAnEmbeddedSpriteWithVisiblePixels()
    {
        var expected = SpriteCatalog.AnimalNames.Concat(SpriteCatalog.ActivityNames).Select(SpriteCatalog.SpriteName).Order(StringComparer.Ordinal);
        Assert.Equal(expected, SpriteLibrary.Names);
        foreach (var name in SpriteCatalog.AnimalNames.Concat(SpriteCatalog.ActivityNames))
        {
            using var bitmap = SpriteLibrary.LoadBitmap(name);
            Assert.Equal(SpriteRenderer.DefaultSpriteSize, bitmap.Width);
            Assert.Equal(SpriteRenderer.DefaultSpriteSize, bitmap.Height);
            var (color, share, opaque) = SpriteTestSupport.DominantColor(name);
            double coverage = (double)opaque / (bitmap.Width * bitmap.Height);
            Assert.True(coverage > 0.08, $"sprite '{name}': only {coverage:P0} of its pixels are opaque");
            // The sprite is cropped tightly: some opaque pixel touches (or nearly) an edge.
            var px = bitmap.GetPixelSpan().ToArray();
            int w = bitmap.Width;
            bool nearEdge = Enumerable.Range(0, w).Any(i =>
                px[(1 * w + i) * 4 + 3] > 128 || px[((w - 2) * w + i) * 4 + 3] > 128 || px[(i * w + 1) * 4 + 3] > 128 || px[(i * w + w - 2) * 4 + 3] > 128);
            Assert.True(nearEdge, $"sprite '{name}' is not cropped to its content");
            Assert.True(share > 0.05, $"sprite '{name}': no dominant colour ({color})");
        }
    }

    [Fact]
    public void CommittedSpritesAreSmall()
    {
        var folder = Path.Combine(TestPaths.RepoRoot, "src", "Ddpo.Pretraining", "Data", "Sprites");
        long total = Directory.GetFiles(folder, "*.png").Sum(f => new FileInfo(f).Length);
        Assert.True(total < 300_000, $"sprites take {total} bytes");
        Assert.All(SpriteLibrary.Names, n => Assert.True(SpriteLibrary.ReadPng(n).Length > 500));
    }

    [Fact]
    public void UnknownSpriteNamesTheAvailableOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => SpriteLibrary.ReadPng("unicorn"));
        Assert.Contains("unicorn", e.Message);
        Assert.Contains("cat", e.Message);
    }
}
