using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Clip;

/// <summary>CLIPVisionModelWithProjection parity with transformers on the committed tiny fixture.</summary>
public sealed class ClipVisionModelTests
{
    private static string FixtureDir => TestPaths.Fixture("clip_vision_tiny");

    private static void AssertMatchesFixture(ClipVisionModelWithProjection model)
    {
        using var scope = NewDisposeScope();
        var io = SafetensorsFile.Load(Path.Combine(FixtureDir, "io.safetensors"));
        using var _ = no_grad();
        var embeds = model.GetImageEmbeds(io["pixel_values"]);
        TensorAssert.Close(io["image_embeds"], embeds, what: "image_embeds");
    }

    [Fact]
    public void MatchesTransformersOnFixture()
    {
        using var model = ClipVisionModelWithProjection.FromPretrained(FixtureDir);
        Assert.Equal(16, model.Config.ProjectionDim);
        AssertMatchesFixture(model);
    }

    [Fact]
    public void LoadsUnprefixedKeysAndFullClipModelFiles()
    {
        var weights = SafetensorsFile.Load(Path.Combine(FixtureDir, "model.safetensors"));
        var unprefixed = TestPaths.NewTempDir("clip-vision-unprefixed");
        var full = TestPaths.NewTempDir("clip-vision-full");
        try
        {
            File.Copy(Path.Combine(FixtureDir, "config.json"), Path.Combine(unprefixed, "config.json"));
            SafetensorsFile.SaveAtomic(Path.Combine(unprefixed, "model.safetensors"),
                weights.ToDictionary(kv => kv.Key.StartsWith("vision_model.") ? kv.Key["vision_model.".Length..] : kv.Key, kv => kv.Value));
            using (var model = ClipVisionModelWithProjection.FromPretrained(unprefixed))
            {
                AssertMatchesFixture(model);
            }

            // A full CLIPModel folder: nested configs, the text tower and projection beside the vision one.
            File.WriteAllText(Path.Combine(full, "config.json"), $$"""
                {"model_type": "clip", "projection_dim": 16,
                 "text_config": {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 12, "vocab_size": 10},
                 "vision_config": {{File.ReadAllText(Path.Combine(FixtureDir, "config.json"))}} }
                """);
            var fullWeights = new Dictionary<string, Tensor>(weights)
            {
                ["text_model.final_layer_norm.weight"] = ones(8),
                ["text_model.embeddings.position_ids"] = arange(77, dtype: ScalarType.Int64).unsqueeze(0),
                ["vision_model.embeddings.position_ids"] = arange(226, dtype: ScalarType.Int64).unsqueeze(0),
                ["text_projection.weight"] = zeros(16, 8),
                ["logit_scale"] = tensor(2.6592f),
            };
            SafetensorsFile.SaveAtomic(Path.Combine(full, "model.safetensors"), fullWeights);
            using (var model = ClipVisionModelWithProjection.FromPretrained(full))
            {
                AssertMatchesFixture(model);
            }
        }
        finally
        {
            StateDictLoader.DisposeAll(weights);
            Directory.Delete(unprefixed, recursive: true);
            Directory.Delete(full, recursive: true);
        }
    }

    [Fact]
    public void MissingProjectionIsReported()
    {
        var dir = TestPaths.NewTempDir("clip-vision-missing");
        try
        {
            File.Copy(Path.Combine(FixtureDir, "config.json"), Path.Combine(dir, "config.json"));
            var weights = SafetensorsFile.Load(Path.Combine(FixtureDir, "model.safetensors"));
            weights.Remove("visual_projection.weight", out var removed);
            removed!.Dispose();
            SafetensorsFile.SaveAtomic(Path.Combine(dir, "model.safetensors"), weights);
            StateDictLoader.DisposeAll(weights);
            var e = Assert.Throws<ModelLoadException>(() => ClipVisionModelWithProjection.FromPretrained(dir));
            Assert.Contains("visual_projection.weight", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void RandomInitSaveAndReload()
    {
        var config = new ClipVisionConfig
        {
            HiddenSize = 8, IntermediateSize = 12, ProjectionDim = 4, NumHiddenLayers = 1, NumAttentionHeads = 2,
            ImageSize = 8, PatchSize = 4, HiddenAct = "gelu",
        };
        var dir = TestPaths.NewTempDir("clip-vision-save");
        try
        {
            using var gen = new Generator(3);
            using var model = new ClipVisionModelWithProjection(config, gen);
            using var _ = no_grad();
            using var pixels = randn(2, 3, 8, 8, generator: gen);
            using var embeds = model.GetImageEmbeds(pixels);
            Assert.Equal(new long[] { 2, 4 }, embeds.shape);
            model.SavePretrained(dir);
            using var reloaded = ClipVisionModelWithProjection.FromPretrained(dir);
            using var again = reloaded.GetImageEmbeds(pixels);
            TensorAssert.Close(embeds, again, atol: 0, rtol: 0, what: "reloaded embeds");
            Assert.Throws<ArgumentException>(() => model.GetImageEmbeds(zeros(1, 3, 9, 9)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
