using System.Text.Json.Nodes;
using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Clip;

/// <summary>
/// CLIPTextModelWithProjection (SD3's CLIP-L and CLIP-G, SDXL's text_encoder_2) against transformers 4.45.2 on the
/// refenv/text_encoders fixtures: last_hidden_state, hidden_states[-2], text_embeds, float64, a weight gradient,
/// the SavePretrained round trip, and the real checkpoints' keys and shapes from the manifests.
/// </summary>
public sealed class ClipTextModelWithProjectionTests(ITestOutputHelper output)
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "text_encoders");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static double MaxError(Tensor expected, Tensor actual) =>
        (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64)).abs().max().item<double>();

    // The float32 outputs of these 3-layer models are O(1); transformers' own float32 run differs from its float64 run
    // by ~1e-6 (printed below), so 2e-5 absolute leaves an order of magnitude for a different summation order and
    // fails on any real difference (a wrong activation or pooled row moves values by > 1e-2).
    private const double Atol = 2e-5, Rtol = 1e-4;

    [Theory]
    [InlineData("clip_l", "quick_gelu", 16)]
    [InlineData("clip_g", "gelu", 24)]
    public void MatchesTransformers(string name, string act, int projection)
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = ClipTextModelWithProjection.FromPretrained(Path.Combine(Folder, name), ScalarType.Float32, CPU);
        Assert.Equal(act, model.Config.HiddenAct);
        Assert.Equal(projection, model.Config.ProjectionDim);
        Assert.Equal(2, model.Config.EosTokenId);
        using var _ = no_grad();
        var o = model.Encode(io[$"{name}.input_ids"]);
        foreach (var (key, actual) in new[] { ("last_hidden_state", o.LastHiddenState), ("hidden_states_m2", o.PenultimateHiddenState), ("text_embeds", o.TextEmbeds) })
        {
            output.WriteLine($"{name}.{key}: max abs error {MaxError(io[$"{name}.{key}"], actual):g3}");
            TensorAssert.Close(io[$"{name}.{key}"], actual, Atol, Rtol, $"{name}.{key}");
        }
        output.WriteLine($"{name}: transformers float32 vs float64 text_embeds {MaxError(io[$"{name}.text_embeds_f64"], io[$"{name}.text_embeds"]):g3}");
        // hidden_states[-2] is the input of the last layer, not normed: it must differ from the final output.
        Assert.True(MaxError(o.LastHiddenState, o.PenultimateHiddenState) > 1e-2);
    }

    [Theory]
    [InlineData("clip_l")]
    [InlineData("clip_g")]
    public void Float64MatchesTransformersFloat64(string name)
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = ClipTextModelWithProjection.FromPretrained(Path.Combine(Folder, name), ScalarType.Float64, CPU);
        using var _ = no_grad();
        var o = model.Encode(io[$"{name}.input_ids"]);
        Assert.Equal(ScalarType.Float64, o.TextEmbeds.dtype);
        output.WriteLine($"{name} f64: last {MaxError(io[$"{name}.last_hidden_state_f64"], o.LastHiddenState):g3}, embeds {MaxError(io[$"{name}.text_embeds_f64"], o.TextEmbeds):g3}");
        // float64 all the way: only summation order differs (~1e-15).
        TensorAssert.Close(io[$"{name}.last_hidden_state_f64"], o.LastHiddenState, 1e-10, 1e-10, $"{name}.last_hidden_state_f64");
        TensorAssert.Close(io[$"{name}.text_embeds_f64"], o.TextEmbeds, 1e-10, 1e-10, $"{name}.text_embeds_f64");
    }

    [Theory]
    [InlineData("clip_l")]
    [InlineData("clip_g")]
    public void WeightGradientMatchesTransformers(string name)
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = ClipTextModelWithProjection.FromPretrained(Path.Combine(Folder, name), ScalarType.Float32, CPU);
        var loss = (model.Encode(io[$"{name}.input_ids"]).TextEmbeds * io[$"{name}.grad_w"]).sum();
        TensorAssert.Close(io[$"{name}.grad_loss"], loss.reshape(1), Atol, Rtol, "loss");
        loss.backward();
        var weight = model.named_parameters().Single(p => p.name == "text_model.encoder.layers.0.self_attn.q_proj.weight").parameter;
        output.WriteLine($"{name} grad: max abs error {MaxError(io[$"{name}.grad_weight"], weight.grad!):g3}");
        TensorAssert.Close(io[$"{name}.grad_weight"], weight.grad!, 1e-5, 1e-3, "d loss / d q_proj.weight");
    }

    [Fact]
    public void SavePretrainedRoundTrips()
    {
        var dir = TestPaths.NewTempDir("clip-proj-save");
        try
        {
            using var scope = NewDisposeScope();
            var io = Io();
            using (var original = ClipTextModelWithProjection.FromPretrained(Path.Combine(Folder, "clip_g"), ScalarType.Float32, CPU))
            {
                original.SavePretrained(dir);
            }
            var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
            Assert.Equal("CLIPTextModelWithProjection", config["architectures"]![0]!.GetValue<string>());
            Assert.Equal(24, config["projection_dim"]!.GetValue<int>());
            var saved = SafetensorsFile.Load(Path.Combine(dir, "model.safetensors"));
            var reference = SafetensorsFile.Load(Path.Combine(Folder, "clip_g", "model.safetensors"));
            Assert.Equal(reference.Keys.Order(StringComparer.Ordinal), saved.Keys.Order(StringComparer.Ordinal));
            Assert.Equal([24, 24], saved["text_projection.weight"].shape);
            using var reloaded = ClipTextModelWithProjection.FromPretrained(dir, ScalarType.Float32, CPU);
            using var _ = no_grad();
            TensorAssert.Close(io["clip_g.text_embeds"], reloaded.Encode(io["clip_g.input_ids"]).TextEmbeds, Atol, Rtol, "reloaded text_embeds");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void RandomInitHasTheProjectionAndKeys()
    {
        var config = new ClipTextConfig { VocabSize = 30, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 2, NumAttentionHeads = 2, MaxPositionEmbeddings = 6, BosTokenId = 28, EosTokenId = 29, ProjectionDim = 5 };
        using var gen = new Generator(3);
        using var model = new ClipTextModelWithProjection(config, gen);
        var keys = model.state_dict().Keys.ToList();
        Assert.Contains("text_projection.weight", keys);
        Assert.DoesNotContain("text_projection.bias", keys);
        Assert.All(keys.Where(k => k != "text_projection.weight"), k => Assert.StartsWith("text_model.", k));
        using var _ = no_grad();
        using var ids = tensor(new long[] { 28, 3, 29, 29, 29, 29 }, [1, 6]);
        var o = model.Encode(ids);
        Assert.Equal([1, 5], o.TextEmbeds.shape);
        Assert.True(o.TextEmbeds.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void ClipTextModelGivesThePenultimateStateToo()
    {
        // The same CLIP-L weights as a plain CLIPTextModel (FLUX's text_encoder): Encode is unchanged, and the new
        // EncodeWithPenultimate returns hidden_states[-2].
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = ClipTextModel.FromPretrained(Path.Combine(Folder, "clip_l_text_model"));
        using var _ = no_grad();
        var (last, pooled) = model.Encode(io["clip_l.input_ids"]);
        TensorAssert.Close(io["clip_l_text_model.last_hidden_state"], last, Atol, Rtol, "last_hidden_state");
        TensorAssert.Close(io["clip_l_text_model.pooler_output"], pooled, Atol, Rtol, "pooler_output");
        var (_, penultimate, _) = model.EncodeWithPenultimate(io["clip_l.input_ids"]);
        TensorAssert.Close(io["clip_l.hidden_states_m2"], penultimate, Atol, Rtol, "hidden_states[-2]");
    }

    [Theory]
    [InlineData("clip_l_text_with_projection.json")]
    [InlineData("clip_g_text_with_projection.json")]
    public void RealSizeModelHasTheManifestsKeysAndShapes(string file)
    {
        var manifest = (JsonObject)JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", file)))!;
        var config = ClipTextConfig.FromJson(new JsonConfig((JsonObject)manifest["config"]!, file));
        // On the meta device: shapes without the parameters' memory.
        using var model = new ClipTextModelWithProjection(config, initialize: false, generator: null, new Device(DeviceType.META));
        var expected = ((JsonObject)manifest["keys"]!).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(d => d!.GetValue<long>()).ToArray());
        var actual = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(manifest["n_state_dict_keys"]!.GetValue<int>(), actual.Count);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(actual[key]), $"{key}: manifest [{string.Join(", ", shape)}], model [{string.Join(", ", actual[key])}]");
        Assert.Equal(manifest["n_parameters"]!.GetValue<long>(), model.parameters().Sum(p => p.numel()));
        Assert.All(model.parameters(), p => Assert.Equal(DeviceType.META, p.device_type));
    }

    [Fact]
    public void ClipTextModelManifestKeysAreUnchanged()
    {
        // FLUX/SDXL's CLIPTextModel: the same keys as before the refactor (the file layout adds text_model.).
        var file = "clip_l_text_model.json";
        var manifest = (JsonObject)JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", file)))!;
        var config = ClipTextConfig.FromJson(new JsonConfig((JsonObject)manifest["config"]!, file));
        using var model = new ClipTextModel(config, initialize: false, generator: null, new Device(DeviceType.META));
        var expected = ((JsonObject)manifest["keys"]!).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(d => d!.GetValue<long>()).ToArray());
        var actual = model.state_dict().ToDictionary(kv => ClipTextModel.WeightPrefix + kv.Key, kv => kv.Value.shape);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(actual[key]), key);
    }
}
