using System.Text.Json.Nodes;
using Ddpo.Data;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Data;

public class EmojiDatasetTests
{
    [Fact]
    public void GenerateWritesWhatTheGeneratorDrawsAndLoadReadsItBack()
    {
        var dir = TestPaths.NewTempDir("ddpo-emoji");
        try
        {
            EmojiDataset.Generate(dir, count: 40, size: 32, seed: 9, activityFraction: 0.4);
            Assert.True(File.Exists(Path.Combine(dir, EmojiDataset.ImagesFile)));
            Assert.True(File.Exists(Path.Combine(dir, EmojiDataset.CaptionsFile)));

            using var generator = new EmojiSceneGenerator(32);
            var expected = new byte[40 * generator.ImageBytes];
            var captions = generator.GenerateBatch(40, new Random(9), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.4, expected);

            using var dataset = EmojiDataset.Load(dir);
            Assert.Equal(40, dataset.Count);
            Assert.Equal(32, dataset.Size);
            Assert.Equal(captions, dataset.Captions);
            Assert.Equal(ScalarType.Byte, dataset.Images.dtype);
            Assert.Equal([40L, 3, 32, 32], dataset.Images.shape);
            Assert.Equal(expected, dataset.Images.data<byte>().ToArray());

            using var batch = dataset.GetImages([3, 0, 39]);
            using var reference = EmojiSceneGenerator.ToFloatImages(expected, 40, 32);
            using var idx = tensor(new long[] { 3, 0, 39 });
            using var picked = reference.index_select(0, idx);
            TensorAssert.Close(picked, batch, atol: 1e-6, rtol: 0, what: "dataset batch");
            Assert.Throws<ArgumentOutOfRangeException>(() => dataset.GetImages([40]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void WriteRoundTripsArbitraryBytesAndCaptions()
    {
        var dir = TestPaths.NewTempDir("ddpo-emoji");
        try
        {
            var rng = new Random(1);
            var pixels = new byte[3 * 3 * 16 * 16];
            rng.NextBytes(pixels);
            string[] captions = ["a cat", "an ant \"quoted\" ünïcode", "a dog riding a bike"];
            EmojiDataset.Write(dir, pixels, 3, 16, captions);
            using var dataset = EmojiDataset.Load(dir);
            Assert.Equal(captions, dataset.Captions);
            Assert.Equal(pixels, dataset.Images.data<byte>().ToArray());
            Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void LoadNamesTheFileAndFieldThatIsWrong()
    {
        var dir = TestPaths.NewTempDir("ddpo-emoji");
        try
        {
            EmojiDataset.Write(dir, new byte[2 * 3 * 16 * 16], 2, 16, ["a cat", "a dog"]);
            var captionsPath = Path.Combine(dir, EmojiDataset.CaptionsFile);
            var json = JsonNode.Parse(File.ReadAllText(captionsPath))!.AsObject();

            json["captions"] = new JsonArray("a cat");
            json["count"] = 1;
            File.WriteAllText(captionsPath, json.ToJsonString());
            var e = Assert.Throws<InvalidDataException>(() => EmojiDataset.Load(dir));
            Assert.Contains(EmojiDataset.ImagesFile, e.Message);
            Assert.Contains("[1,3,16,16]", e.Message);

            json["count"] = 5;
            File.WriteAllText(captionsPath, json.ToJsonString());
            e = Assert.Throws<InvalidDataException>(() => EmojiDataset.Load(dir));
            Assert.Contains(captionsPath, e.Message);
            Assert.Contains("'count'", e.Message);

            File.WriteAllText(captionsPath, "{not json");
            e = Assert.Throws<InvalidDataException>(() => EmojiDataset.Load(dir));
            Assert.Contains(captionsPath, e.Message);

            File.Delete(Path.Combine(dir, EmojiDataset.ImagesFile));
            File.WriteAllText(captionsPath, new JsonObject { ["format"] = "ddpo-emoji-dataset", ["version"] = 1, ["count"] = 0, ["size"] = 16, ["captions"] = new JsonArray() }.ToJsonString());
            e = Assert.Throws<InvalidDataException>(() => EmojiDataset.Load(dir));
            Assert.Contains(EmojiDataset.ImagesFile, e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
