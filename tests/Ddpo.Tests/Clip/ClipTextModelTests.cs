using Ddpo.Base;
using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Clip;

/// <summary>CLIPTextModel parity with transformers on the committed tiny fixture.</summary>
public sealed class ClipTextModelTests
{
    private static string FixtureDir => TestPaths.Fixture("clip_text_tiny");

    private static void AssertMatchesFixture(ClipTextModel model)
    {
        using var scope = NewDisposeScope();
        var io = SafetensorsFile.Load(Path.Combine(FixtureDir, "io.safetensors"));
        using var _ = no_grad();
        var (last, pooled) = model.Encode(io["input_ids"]);
        TensorAssert.Close(io["last_hidden_state"], last, what: "last_hidden_state");
        TensorAssert.Close(io["pooler_output"], pooled, what: "pooler_output");
    }

    [Fact]
    public void MatchesTransformersOnFixture()
    {
        using var model = ClipTextModel.FromPretrained(FixtureDir);
        Assert.Equal(98, model.Config.EosTokenId);
        Assert.Equal("quick_gelu", model.Config.HiddenAct);
        AssertMatchesFixture(model);
    }

    [Fact]
    public void LoadsPrefixedAndFullClipModelKeys()
    {
        var dir = TestPaths.NewTempDir("clip-text-prefixed");
        try
        {
            File.Copy(Path.Combine(FixtureDir, "config.json"), Path.Combine(dir, "config.json"));
            var weights = SafetensorsFile.Load(Path.Combine(FixtureDir, "model.safetensors"));
            var prefixed = weights.ToDictionary(kv => "text_model." + kv.Key, kv => kv.Value);
            // What a transformers 4.x file or a full CLIPModel file adds around the text tower.
            prefixed["text_model.embeddings.position_ids"] = arange(77, dtype: ScalarType.Int64).unsqueeze(0);
            prefixed["vision_model.post_layernorm.weight"] = ones(8);
            prefixed["text_projection.weight"] = zeros(16, 32);
            prefixed["logit_scale"] = tensor(2.6592f);
            SafetensorsFile.SaveAtomic(Path.Combine(dir, "model.safetensors"), prefixed);
            StateDictLoader.DisposeAll(prefixed);

            using var model = ClipTextModel.FromPretrained(dir);
            AssertMatchesFixture(model);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void LoadsShardedWeights()
    {
        var dir = TestPaths.NewTempDir("clip-text-sharded");
        try
        {
            File.Copy(Path.Combine(FixtureDir, "config.json"), Path.Combine(dir, "config.json"));
            var weights = SafetensorsFile.Load(Path.Combine(FixtureDir, "model.safetensors"));
            var map = new System.Text.Json.Nodes.JsonObject();
            foreach (var (shard, part) in new[] { ("model-00001-of-00002.safetensors", 0), ("model-00002-of-00002.safetensors", 1) })
            {
                var subset = weights.Where(kv => (kv.Key.StartsWith("encoder.") ? 1 : 0) == part)
                    .ToDictionary(kv => "text_model." + kv.Key, kv => kv.Value);
                SafetensorsFile.SaveAtomic(Path.Combine(dir, shard), subset);
                foreach (var key in subset.Keys) map[key] = shard;
            }
            StateDictLoader.DisposeAll(weights);
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"),
                new System.Text.Json.Nodes.JsonObject { ["metadata"] = new System.Text.Json.Nodes.JsonObject(), ["weight_map"] = map }.ToJsonString());
            using var model = ClipTextModel.FromPretrained(dir);
            AssertMatchesFixture(model);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void SavePretrainedRoundTrips()
    {
        var dir = TestPaths.NewTempDir("clip-text-save");
        try
        {
            using (var original = ClipTextModel.FromPretrained(FixtureDir))
            {
                original.SavePretrained(dir);
            }
            var keys = SafetensorsFile.Load(Path.Combine(dir, "model.safetensors"));
            Assert.All(keys.Keys, k => Assert.StartsWith("text_model.", k));
            Assert.DoesNotContain(keys.Keys, k => k.Contains("position_ids"));
            StateDictLoader.DisposeAll(keys);
            using var reloaded = ClipTextModel.FromPretrained(dir);
            AssertMatchesFixture(reloaded);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void RandomInitEncodesWithFirstEosPooling()
    {
        var config = new ClipTextConfig
        {
            VocabSize = 20, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 1, NumAttentionHeads = 2,
            MaxPositionEmbeddings = 6, BosTokenId = 18, EosTokenId = 19, HiddenAct = "gelu",
        };
        using var gen = new Generator(7);
        using var model = new ClipTextModel(config, gen);
        using var _ = no_grad();
        using var ids = tensor(new long[] { 18, 3, 19, 19, 19, 19, 18, 4, 5, 6, 19, 19 }, [2, 6]);
        var (last, pooled) = model.Encode(ids);
        Assert.Equal(new long[] { 2, 6, 8 }, last.shape);
        TensorAssert.Close(last[0, 2], pooled[0], atol: 0, rtol: 0, what: "pooled row 0");
        TensorAssert.Close(last[1, 4], pooled[1], atol: 0, rtol: 0, what: "pooled row 1");
        // Causal: the first positions do not depend on later tokens.
        using var changed = tensor(new long[] { 18, 3, 19, 7, 7, 7 }, [1, 6]);
        var (last2, _) = model.Encode(changed);
        TensorAssert.Close(last[0, ..3], last2[0, ..3], atol: 1e-6, what: "causal prefix");
        Assert.True(last.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void LegacyEosTwoPoolsAtLargestId()
    {
        // transformers: with eos_token_id == 2 (old configs) the pooled token is the arg-max id.
        var config = new ClipTextConfig
        {
            VocabSize = 20, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 1, NumAttentionHeads = 2,
            MaxPositionEmbeddings = 5, BosTokenId = 1, EosTokenId = 2,
        };
        using var gen = new Generator(11);
        using var model = new ClipTextModel(config, gen);
        using var _ = no_grad();
        using var ids = tensor(new long[] { 1, 2, 19, 2, 2 }, [1, 5]);
        var (last, pooled) = model.Encode(ids);
        TensorAssert.Close(last[0, 2], pooled[0], atol: 0, rtol: 0, what: "legacy pooled");
        Assert.Throws<ArgumentException>(() => model.Encode(tensor(new long[] { 1, 20 }, [1, 2])));
        Assert.Throws<ArgumentException>(() => model.Encode(zeros(1, 6, dtype: ScalarType.Int64)));
    }

    [Fact]
    public void MissingWeightTensorIsReported()
    {
        var dir = TestPaths.NewTempDir("clip-text-missing");
        try
        {
            File.Copy(Path.Combine(FixtureDir, "config.json"), Path.Combine(dir, "config.json"));
            var weights = SafetensorsFile.Load(Path.Combine(FixtureDir, "model.safetensors"));
            weights.Remove("encoder.layers.1.mlp.fc2.weight", out var removed);
            removed!.Dispose();
            SafetensorsFile.SaveAtomic(Path.Combine(dir, "model.safetensors"), weights);
            StateDictLoader.DisposeAll(weights);
            var e = Assert.Throws<ModelLoadException>(() => ClipTextModel.FromPretrained(dir));
            Assert.Contains("encoder.layers.1.mlp.fc2.weight", e.Message);
            Assert.Contains("model.safetensors", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void UnsupportedHiddenActNamesTheField()
    {
        var dir = TestPaths.NewTempDir("clip-text-act");
        try
        {
            var path = Path.Combine(dir, "config.json");
            File.WriteAllText(path, File.ReadAllText(Path.Combine(FixtureDir, "config.json")).Replace("\"quick_gelu\"", "\"swish\""));
            var e = Assert.Throws<ConfigException>(() => ClipTextConfig.Load(path));
            Assert.Contains("hidden_act", e.Message);
            Assert.Contains("swish", e.Message);
            Assert.Contains(path, e.Message);
            Assert.Throws<ConfigException>(() => new ClipTextModel(new ClipTextConfig { HiddenAct = "relu" }));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
