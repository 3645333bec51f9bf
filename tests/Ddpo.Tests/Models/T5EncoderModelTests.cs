using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Models.T5;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>
/// T5EncoderModel (SD3's text_encoder_3, FLUX's text_encoder_2) against transformers 4.45.2 on refenv/text_encoders/t5
/// (T5 v1.1 gated-gelu, 32 buckets, max_distance 128): without and with the mask, 140 tokens (beyond max_distance),
/// float64, the relative-bias gradient, the tied embedding's names, strict config and the real T5-XXL keys on meta.
/// </summary>
public sealed class T5EncoderModelTests(ITestOutputHelper output)
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "text_encoders");
    private static readonly string ModelFolder = Path.Combine(Folder, "t5");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static double MaxError(Tensor expected, Tensor actual) =>
        (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64)).abs().max().item<double>();

    // Outputs are RMS-normed (O(1)); transformers' float32 vs float64 runs differ by ~1e-6 (printed), so 2e-5 absolute
    // allows another summation order while a wrong bucket or activation moves values by ≫ 1e-3.
    private const double Atol = 2e-5, Rtol = 1e-4;

    private static T5EncoderModel Load(ScalarType dtype = ScalarType.Float32) => T5EncoderModel.FromPretrained(ModelFolder, dtype, CPU);

    [Fact]
    public void MatchesTransformersWithoutAndWithMask()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = Load();
        Assert.True(model.Config.IsGatedAct);
        Assert.Equal("gelu_new", model.Config.DenseActFn);
        using var _ = no_grad();
        var plain = model.forward(io["t5.input_ids"]);
        output.WriteLine($"no mask: max abs error {MaxError(io["t5.last_hidden_state"], plain):g3}; transformers f32 vs f64 {MaxError(io["t5.last_hidden_state_f64"], io["t5.last_hidden_state"]):g3}");
        TensorAssert.Close(io["t5.last_hidden_state"], plain, Atol, Rtol, "last_hidden_state");
        var masked = model.forward(io["t5.input_ids"], io["t5.attention_mask"]);
        output.WriteLine($"mask: max abs error {MaxError(io["t5.last_hidden_state_masked"], masked):g3}");
        TensorAssert.Close(io["t5.last_hidden_state_masked"], masked, Atol, Rtol, "last_hidden_state_masked");
        Assert.True(MaxError(plain, masked) > 1e-3, "the mask must change the padded rows' context");
    }

    [Fact]
    public void LongInputUsesTheClampedBuckets()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = Load();
        using var _ = no_grad();
        var o = model.forward(io["t5.long_input_ids"]);
        output.WriteLine($"140 tokens: max abs error {MaxError(io["t5.long_last_hidden_state"], o):g3}");
        TensorAssert.Close(io["t5.long_last_hidden_state"], o, Atol, Rtol, "long_last_hidden_state");
    }

    [Fact]
    public void BucketsAreTransformersBidirectionalBuckets()
    {
        // transformers' _relative_position_bucket(bidirectional, 32 buckets, max_distance 128), worked by hand:
        // 16 per direction, positive distances offset by 16; exact below 8; log-spaced 8..15 up to 128; clamped after.
        using var rel = tensor(new long[] { 0, -1, 1, -7, 7, -8, 8, -12, 12, -127, 127, -128, 128, -139, 139 });
        using var buckets = T5Attention.RelativePositionBucket(rel, 32, 128);
        long[] expected = [0, 1, 17, 7, 23, 8, 24, 9, 25, 15, 31, 15, 31, 15, 31];
        Assert.Equal(expected, buckets.data<long>().ToArray());
    }

    [Fact]
    public void Float64MatchesTransformersFloat64()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = Load(ScalarType.Float64);
        using var _ = no_grad();
        var o = model.forward(io["t5.input_ids"]);
        Assert.Equal(ScalarType.Float64, o.dtype);
        double err = MaxError(io["t5.last_hidden_state_f64"], o);
        output.WriteLine($"f64: max abs error {err:g3}");
        // transformers keeps the RMS norm's mean square and the softmax in float32 even for a float64 model, and so do we:
        // the same casts give the same float32 roundings (measured 2e-15); without them the error would be ~1e-7.
        TensorAssert.Close(io["t5.last_hidden_state_f64"], o, 1e-9, 1e-9, "last_hidden_state_f64");
    }

    [Fact]
    public void RelativeBiasGradientMatchesTransformers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = Load();
        var loss = (model.forward(io["t5.input_ids"]) * io["t5.grad_w"]).sum();
        TensorAssert.Close(io["t5.grad_loss"], loss.reshape(1), 1e-4, 1e-4, "loss");
        loss.backward();
        var weight = model.named_parameters().Single(p => p.name == "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight").parameter;
        output.WriteLine($"grad: max abs error {MaxError(io["t5.grad_weight"], weight.grad!):g3}");
        TensorAssert.Close(io["t5.grad_weight"], weight.grad!, 1e-4, 1e-3, "d loss / d relative_attention_bias.weight");
    }

    [Fact]
    public void SavePretrainedRoundTripsAndEitherEmbeddingNameLoads()
    {
        var dir = TestPaths.NewTempDir("t5-save");
        var alt = TestPaths.NewTempDir("t5-embed-tokens");
        try
        {
            using var scope = NewDisposeScope();
            var io = Io();
            using (var original = Load()) original.SavePretrained(dir);
            var saved = SafetensorsFile.Load(Path.Combine(dir, "model.safetensors"));
            var reference = SafetensorsFile.Load(Path.Combine(ModelFolder, "model.safetensors"));
            // As transformers writes it: the tied embedding once, as shared.weight.
            Assert.Equal(reference.Keys.Order(StringComparer.Ordinal), saved.Keys.Order(StringComparer.Ordinal));
            using (var reloaded = T5EncoderModel.FromPretrained(dir, ScalarType.Float32, CPU))
            using (no_grad())
            {
                TensorAssert.Close(io["t5.last_hidden_state"], reloaded.forward(io["t5.input_ids"]), Atol, Rtol, "reloaded");
            }
            // A file that names the embedding encoder.embed_tokens.weight only.
            File.Copy(Path.Combine(ModelFolder, "config.json"), Path.Combine(alt, "config.json"));
            var renamed = reference.ToDictionary(kv => kv.Key == "shared.weight" ? "encoder.embed_tokens.weight" : kv.Key, kv => kv.Value);
            SafetensorsFile.SaveAtomic(Path.Combine(alt, "model.safetensors"), renamed);
            using (var other = T5EncoderModel.FromPretrained(alt, ScalarType.Float32, CPU))
            using (no_grad())
            {
                TensorAssert.Close(io["t5.last_hidden_state"], other.forward(io["t5.input_ids"]), Atol, Rtol, "embed_tokens only");
            }
            // Both names but different values: an error naming both.
            renamed["shared.weight"] = reference["shared.weight"] + 1;
            SafetensorsFile.SaveAtomic(Path.Combine(alt, "model.safetensors"), renamed);
            var e = Assert.Throws<ModelLoadException>(() => T5EncoderModel.FromPretrained(alt, ScalarType.Float32, CPU));
            Assert.Contains("shared.weight", e.Message);
            Assert.Contains("encoder.embed_tokens.weight", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
            Directory.Delete(alt, recursive: true);
        }
    }

    [Fact]
    public void MissingWeightIsReported()
    {
        var dir = TestPaths.NewTempDir("t5-missing");
        try
        {
            File.Copy(Path.Combine(ModelFolder, "config.json"), Path.Combine(dir, "config.json"));
            var weights = SafetensorsFile.Load(Path.Combine(ModelFolder, "model.safetensors"));
            weights.Remove("encoder.block.1.layer.1.DenseReluDense.wi_1.weight", out var removed);
            removed!.Dispose();
            SafetensorsFile.SaveAtomic(Path.Combine(dir, "model.safetensors"), weights);
            StateDictLoader.DisposeAll(weights);
            var e = Assert.Throws<ModelLoadException>(() => T5EncoderModel.FromPretrained(dir, ScalarType.Float32, CPU));
            Assert.Contains("encoder.block.1.layer.1.DenseReluDense.wi_1.weight", e.Message);
            Assert.Contains("model.safetensors", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("\"relative_attention_num_buckets\": 32", "\"relative_attention_num_buckets\": 32, \"use_rotary\": true", "use_rotary")]
    [InlineData("\"d_model\": 48", "\"d_model\": \"48\"", "d_model")]
    [InlineData("\"feed_forward_proj\": \"gated-gelu\"", "\"feed_forward_proj\": \"gated-silu\"", "feed_forward_proj")]
    [InlineData("\"dense_act_fn\": \"gelu_new\"", "\"dense_act_fn\": \"gelu\"", "dense_act_fn")]
    [InlineData("\"model_type\": \"t5\"", "\"model_type\": \"umt5\"", "model_type")]
    public void BadConfigNamesTheKey(string find, string replace, string key)
    {
        var dir = TestPaths.NewTempDir("t5-config");
        try
        {
            var path = Path.Combine(dir, "config.json");
            var text = File.ReadAllText(Path.Combine(ModelFolder, "config.json"));
            Assert.Contains(find, text);
            File.WriteAllText(path, text.Replace(find, replace));
            var e = Assert.Throws<ConfigException>(() => T5Config.Load(path));
            Assert.Contains(key, e.Message);
            Assert.Contains(path, e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void RandomReluModelRuns()
    {
        var config = new T5Config { VocabSize = 20, DModel = 8, DKv = 4, DFf = 12, NumLayers = 2, NumHeads = 2, FeedForwardProj = "relu" };
        using var gen = new Generator(5);
        using var model = new T5EncoderModel(config, gen);
        var keys = model.state_dict().Keys.ToList();
        Assert.Contains("encoder.block.0.layer.1.DenseReluDense.wi.weight", keys);
        Assert.DoesNotContain("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight", keys);
        using var _ = no_grad();
        using var ids = tensor(new long[] { 3, 4, 5, 1 }, [1, 4]);
        var o = model.forward(ids);
        Assert.Equal([1, 4, 8], o.shape);
        Assert.True(o.isfinite().all().item<bool>());
        Assert.Throws<ArgumentException>(() => model.forward(tensor(new long[] { 3, 20 }, [1, 2])));
    }

    [Fact]
    public void HalfPrecisionStaysFinite()
    {
        // float16 exercises the mean square in float32 and the inf clamp; the result stays close to float32.
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = Load(ScalarType.Float16);
        using var _ = no_grad();
        var o = model.forward(io["t5.input_ids"]);
        Assert.Equal(ScalarType.Float16, o.dtype);
        output.WriteLine($"f16: max abs error {MaxError(io["t5.last_hidden_state"], o):g3}");
        // float16 keeps ~3 decimal digits (2^-11 relative) of outputs up to ~4 after two blocks: measured 5e-3.
        TensorAssert.Close(io["t5.last_hidden_state"], o.to(ScalarType.Float32), 1e-2, 1e-2, "float16 last_hidden_state");
    }

    [Fact]
    public void RealSizeModelHasTheManifestsKeysAndShapes()
    {
        var manifest = (JsonObject)JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", "t5_v1_1_xxl_encoder.json")))!;
        var config = T5Config.FromJson(new JsonConfig((JsonObject)manifest["config"]!, "t5_v1_1_xxl_encoder.json"));
        // On the meta device: 4.8 B parameters' shapes without their memory.
        using var model = new T5EncoderModel(config, new Device(DeviceType.META), initialize: false, generator: null);
        var expected = ((JsonObject)manifest["keys"]!).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(d => d!.GetValue<long>()).ToArray());
        var actual = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(manifest["n_state_dict_keys"]!.GetValue<int>(), actual.Count);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(actual[key]), $"{key}: manifest [{string.Join(", ", shape)}], model [{string.Join(", ", actual[key])}]");
        // The tied embedding counts once.
        Assert.Equal(manifest["n_parameters"]!.GetValue<long>(), model.parameters().Sum(p => p.numel()));
    }
}
