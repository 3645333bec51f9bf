using System.Diagnostics;
using System.Text.RegularExpressions;
using Ddpo.Data;
using Ddpo.Rewards;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Data;

public class EmojiSceneGeneratorTests
{
    private const int Size = 32;

    [Fact]
    public void EverySpriteShowsItsDominantColourOverAPlainBackground()
    {
        using var generator = new EmojiSceneGenerator(Size);
        var scene = new byte[generator.ImageBytes];
        var plain = new byte[generator.ImageBytes];
        foreach (var name in SpriteCatalog.AnimalNames.Concat(SpriteCatalog.ActivityNames))
        {
            var (dominant, _, _) = SpriteTestSupport.DominantColor(name);
            // A flat background far from the dominant colour (the opposite corner of the RGB cube).
            int bg = (dominant.R < 128 ? 0xFF0000 : 0) | (dominant.G < 128 ? 0x00FF00 : 0) | (dominant.B < 128 ? 0x0000FF : 0);
            var layout = new SceneLayout(new ScenePrompt("cat"), new BackgroundSpec(BackgroundKind.Flat, [bg]),
                [new SpritePlacement(name, Size / 2f, Size / 2f, Size * 0.8f)]);
            generator.Paint(layout, scene);
            generator.Paint(layout, plain, drawSprites: false);

            int changed = Enumerable.Range(0, Size * Size).Count(i => scene[i] != plain[i] || scene[Size * Size + i] != plain[Size * Size + i] || scene[2 * Size * Size + i] != plain[2 * Size * Size + i]);
            Assert.True(changed > Size * Size / 8, $"sprite '{name}' changed only {changed} pixels");
            Assert.Equal(0, SpriteTestSupport.CountNear(plain, Size, dominant, 24));
            int near = SpriteTestSupport.CountNear(scene, Size, dominant, 24);
            Assert.True(near >= 3, $"sprite '{name}': its dominant colour {dominant} appears in only {near} pixels");
        }
    }

    [Fact]
    public void SampledScenesDrawTheAnimalAndTheActivityObject()
    {
        using var generator = new EmojiSceneGenerator(Size);
        var rng = new Random(11);
        var full = new byte[generator.ImageBytes];
        var plain = new byte[generator.ImageBytes];
        var objectOnly = new byte[generator.ImageBytes];
        foreach (var animal in SpriteCatalog.AnimalNames)
        {
            var activity = SpriteCatalog.ActivityNames[rng.Next(SpriteCatalog.ActivityNames.Count)];
            var layout = generator.SampleLayout(new ScenePrompt(animal, activity), rng);
            Assert.Equal([activity, animal], layout.Sprites.Select(s => s.Sprite));
            generator.Paint(layout, full);
            generator.Paint(layout, plain, drawSprites: false);
            generator.Paint(layout with { Sprites = [layout.Sprites[0]] }, objectOnly);
            Assert.True(Differing(full, plain) > Size * Size / 10, $"{layout.Prompt}: the sprites barely change the background");
            Assert.True(Differing(objectOnly, plain) > Size * Size / 30, $"{layout.Prompt}: the {activity} object is not visible");
        }
    }

    [Fact]
    public void LayoutsStayWithinTheirRanges()
    {
        var rng = new Random(3);
        foreach (int size in new[] { 32, 64 })
        {
            for (int i = 0; i < 400; i++)
            {
                var animal = SpriteCatalog.AnimalNames[rng.Next(45)];
                var layout = SceneLayoutSampler.Sample(new ScenePrompt(animal), size, rng);
                var s = Assert.Single(layout.Sprites);
                Assert.InRange(s.Size, 0.45f * size, 0.85f * size);
                Assert.InRange(s.RotationDegrees, -25f, 25f);
                Assert.InRange(s.CenterX - s.Size / 2, -1e-3f, size);
                Assert.InRange(s.CenterX + s.Size / 2, 0, size + 1e-3f);
                Assert.InRange(s.CenterY - s.Size / 2, -1e-3f, size);
                Assert.InRange(s.CenterY + s.Size / 2, 0, size + 1e-3f);

                var activity = SpriteCatalog.ActivityNames[i % 3];
                var withActivity = SceneLayoutSampler.Sample(new ScenePrompt(animal, activity), size, rng);
                Assert.Equal(2, withActivity.Sprites.Count);
                // The object is smaller than the animal, except the bike, which the animal sits on.
                float slack = activity == "riding a bike" ? 0.26f * size : 0;
                Assert.True(withActivity.Sprites[0].Size < withActivity.Sprites[1].Size + slack, $"{activity}: object {withActivity.Sprites[0].Size} vs animal {withActivity.Sprites[1].Size}");
                Assert.All(withActivity.Sprites, p => Assert.InRange(p.CenterX, 0, size));
                Assert.InRange(withActivity.Sprites[1].Size, 0.3f * size, 0.85f * size);
            }
        }
        var kinds = Enumerable.Range(0, 300).Select(_ => SceneLayoutSampler.Sample(new ScenePrompt("cat"), 32, rng).Background.Kind).Distinct();
        Assert.Equal(Enum.GetValues<BackgroundKind>().Length, kinds.Count());
    }

    [Fact]
    public void BatchCaptionsUseTheRightArticleAndTensorsAreInRange()
    {
        using var generator = new EmojiSceneGenerator(Size);
        var (images, captions) = generator.GenerateBatch(60, new Random(5), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.5);
        using (images)
        {
            Assert.Equal([60L, 3, Size, Size], images.shape);
            Assert.Equal(ScalarType.Float32, images.dtype);
            Assert.True(images.min().item<float>() >= -1f && images.max().item<float>() <= 1f);
            Assert.True(images.max().item<float>() - images.min().item<float>() > 1.5f);
        }
        var pattern = new Regex($"^(a|an) ({string.Join('|', SpriteCatalog.AnimalNames)})( ({string.Join('|', SpriteCatalog.ActivityNames)}))?$");
        foreach (var caption in captions)
        {
            var m = pattern.Match(caption);
            Assert.True(m.Success, $"caption '{caption}'");
            Assert.Equal("aeiou".Contains(m.Groups[2].Value[0]) ? "an" : "a", m.Groups[1].Value);
        }
        int withActivity = captions.Count(c => SpriteCatalog.ActivityNames.Any(c.EndsWith));
        Assert.InRange(withActivity, 15, 45);

        var none = generator.GenerateBatch(20, new Random(1), ["cat"], SpriteCatalog.ActivityNames, 0.0, new byte[20 * generator.ImageBytes]);
        Assert.All(none, c => Assert.Equal("a cat", c));
        var all = generator.GenerateBatch(20, new Random(1), ["ant"], ["riding a bike"], 1.0, new byte[20 * generator.ImageBytes]);
        Assert.All(all, c => Assert.Equal("an ant riding a bike", c));
    }

    [Fact]
    public void SameSeedGivesTheSameBatchAndAnotherSeedDoesNot()
    {
        using var a = new EmojiSceneGenerator(Size);
        using var b = new EmojiSceneGenerator(Size);
        var first = new byte[16 * a.ImageBytes];
        var second = new byte[16 * a.ImageBytes];
        var third = new byte[16 * a.ImageBytes];
        var c1 = a.GenerateBatch(16, new Random(42), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.3, first);
        var c2 = b.GenerateBatch(16, new Random(42), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.3, second);
        var c3 = a.GenerateBatch(16, new Random(43), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.3, third);
        Assert.Equal(c1, c2);
        Assert.Equal(first, second);
        Assert.NotEqual(first, third);
        Assert.Equal(a.Generate("a cat playing chess", new Random(7)), b.Generate("a cat playing chess", new Random(7)));
    }

    [Fact]
    public void JpegSizeVariesWidelyAcrossABatch()
    {
        using var generator = new EmojiSceneGenerator(Size);
        const int count = 64;
        var pixels = new byte[count * generator.ImageBytes];
        generator.GenerateBatch(count, new Random(2024), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.25, pixels);
        // The reward's encoder (PIL's bytes) on interleaved RGB; the generator writes planar [3, H, W].
        var sizes = Enumerable.Range(0, count)
            .Select(i => JpegEncoding.Encode(SceneImages.Interleave(pixels.AsSpan(i * generator.ImageBytes, generator.ImageBytes)), Size, Size).Length).ToArray();
        double ratio = (double)sizes.Max() / sizes.Min();
        Assert.True(ratio > 2, $"JPEG sizes {sizes.Min()}..{sizes.Max()} bytes: ratio {ratio:F2}");
    }

    [Theory]
    [InlineData(32)]
    [InlineData(48)]
    [InlineData(64)]
    public void WorksAtEverySupportedSize(int size)
    {
        using var generator = new EmojiSceneGenerator(size);
        using var image = generator.GenerateTensor("a kangaroo washing the dishes", new Random(size));
        Assert.Equal([3L, size, size], image.shape);
        using var std = image.std();
        Assert.True(std.item<float>() > 0.05f);
    }

    /// <summary>
    /// A large batch is filled completely (no image left blank). Its speed is measured by <c>ddpo make-data</c>,
    /// which prints images per second, not asserted here: a timed unit test fails on a busy machine.
    /// </summary>
    [Fact]
    public void FillsEveryImageOfALargeBatch()
    {
        using var generator = new EmojiSceneGenerator(Size);
        var pixels = new byte[2000 * generator.ImageBytes];
        generator.GenerateBatch(2000, new Random(1), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.25, pixels);
        for (int i = 0; i < 2000; i++)
        {
            var image = pixels.AsSpan(i * generator.ImageBytes, generator.ImageBytes);
            Assert.True(image.ContainsAnyExcept(image[0]), $"image {i} of the batch is a single flat value");
        }
    }

    [Fact]
    public void RejectsUnknownAnimalsAndBadArguments()
    {
        using var generator = new EmojiSceneGenerator(Size);
        var buffer = new byte[generator.ImageBytes];
        Assert.Contains("unicorn", Assert.Throws<ArgumentException>(() => generator.GenerateBatch(1, new Random(0), ["unicorn"], [], 0, buffer)).Message);
        Assert.Contains("juggling", Assert.Throws<ArgumentException>(() => generator.GenerateBatch(1, new Random(0), ["cat"], ["juggling"], 0, buffer)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => generator.GenerateBatch(1, new Random(0), ["cat"], [], 1.5, buffer));
        Assert.Contains("need", Assert.Throws<ArgumentException>(() => generator.GenerateBatch(2, new Random(0), ["cat"], [], 0, buffer)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new EmojiSceneGenerator(8));
    }

    private static int Differing(byte[] a, byte[] b)
    {
        int n = a.Length / 3, count = 0;
        for (int i = 0; i < n; i++)
        {
            if (a[i] != b[i] || a[n + i] != b[n + i] || a[2 * n + i] != b[2 * n + i]) count++;
        }
        return count;
    }
}
