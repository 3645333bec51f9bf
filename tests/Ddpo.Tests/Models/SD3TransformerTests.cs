using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Models.Lora;
using Ddpo.Models.Transformers;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>
/// <c>SD3Transformer2DModel</c> against diffusers 0.31 on the refenv fixtures (sd3_transformer: SD3-style; sd35_transformer:
/// dual attention in block 0 and RMS q/k norms), float32 and float64, gradients, save/load, LoRA on the attention
/// projections, strict config and weights, and the three real models' keys and shapes on the meta device.
/// </summary>
public sealed class SD3TransformerTests(ITestOutputHelper output)
{
    private const string WeightsName = "diffusion_pytorch_model.safetensors";

    private static string Folder(string name) => TestPaths.Fixture("refenv", name);

    private static string ModelFolder(string name) => Path.Combine(Folder(name), "model");

    private static Dictionary<string, Tensor> Io(string name) => SafetensorsFile.Load(Path.Combine(Folder(name), "io.safetensors"));

    private static Tensor Run(SD3Transformer2DModel m, Dictionary<string, Tensor> io, ScalarType dtype = ScalarType.Float32) =>
        m.forward(io["hidden_states"].to(dtype), io["encoder_hidden_states"].to(dtype), io["pooled_projections"].to(dtype), io["timestep"].to(dtype));

    private static bool Same(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private double MaxAbs(Tensor a, Tensor b, string what)
    {
        double e = (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
        output.WriteLine($"{what}: max abs error {e:g4} (max |ref| {b.abs().max().to(ScalarType.Float64).item<double>():g4})");
        return e;
    }

    [Theory]
    [InlineData("sd3_transformer")]
    [InlineData("sd35_transformer")]
    public void Float32MatchesDiffusers(string name)
    {
        using var scope = NewDisposeScope();
        var io = Io(name);
        using var m = SD3Transformer2DModel.FromPretrained(ModelFolder(name), ScalarType.Float32, CPU);
        using var _ = no_grad();
        var got = Run(m, io);
        Assert.Equal(ScalarType.Float32, got.dtype);
        // diffusers' own float32 rounding: |out - out_f64|.
        double refErr = MaxAbs(io["out"], io["out_f64"], $"{name} diffusers f32 vs f64");
        MaxAbs(got, io["out"], $"{name} ours f32 vs diffusers f32");
        MaxAbs(got, io["out_f64"], $"{name} ours f32 vs diffusers f64");
        TensorAssert.Close(io["out"], got, atol: Atol32, rtol: 0, what: $"{name} out");
        TensorAssert.Close(io["out_f64"], got.to(ScalarType.Float64), atol: Atol32, rtol: 0, what: $"{name} out vs out_f64");
        Assert.True(refErr < Atol32);
    }

    // Outputs are O(2). diffusers' own float32 error |out - out_f64| is 5.2e-7 (sd3) / 4.4e-7 (sd35); ours vs out is
    // 8.3e-7 / 7.2e-7 and vs out_f64 7.2e-7 / 6.4e-7 (measured): ~10x headroom over the reference's own rounding.
    private const double Atol32 = 5e-6;

    [Theory]
    [InlineData("sd3_transformer")]
    [InlineData("sd35_transformer")]
    public void Float64MatchesDiffusersFloat64(string name)
    {
        using var scope = NewDisposeScope();
        var io = Io(name);
        using var m = SD3Transformer2DModel.FromPretrained(ModelFolder(name), ScalarType.Float64, CPU);
        Assert.Equal(ScalarType.Float64, m.DType);
        using var _ = no_grad();
        var got = Run(m, io, ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, got.dtype);
        MaxAbs(got, io["out_f64"], $"{name} ours f64 vs diffusers f64");
        TensorAssert.Close(io["out_f64"], got, atol: Atol64, rtol: 0, what: $"{name} out_f64");
    }

    // Not 1e-12: the float64 run keeps two float32 steps of diffusers. The timestep sinusoid is float32 (args up to 1000
    // rad), and libtorch's float32 sin/cos are not correctly rounded (27 of the 512 fixture entries are 1 ulp off the
    // correctly rounded value here), so a different build's kernels move it by an ulp; SD3.5's RMS norm also takes its
    // mean square in float32. Measured 4.8e-7 (sd3) / 5.4e-7 (sd35) on outputs of ~2.
    private const double Atol64 = 1e-6;

    [Fact]
    public void ToConvertsWeightsAndThePositionBuffer()
    {
        using var scope = NewDisposeScope();
        var io = Io("sd35_transformer");
        using var m = SD3Transformer2DModel.FromPretrained(ModelFolder("sd35_transformer"), ScalarType.Float32, CPU);
        Assert.Equal(ScalarType.Float32, m.DType);
        m.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, m.DType);
        Assert.Equal(DeviceType.CPU, m.Device.type);
        Assert.All(m.state_dict().Values, t => Assert.Equal(ScalarType.Float64, t.dtype));
        using var _ = no_grad();
        // Float32 inputs are converted to the model's dtype.
        var got = Run(m, io);
        Assert.Equal(ScalarType.Float64, got.dtype);
        TensorAssert.Close(io["out_f64"], got, atol: Atol64, rtol: 0, what: "out after .to(float64)");
    }

    [Theory]
    [InlineData("sd3_transformer")]
    [InlineData("sd35_transformer")]
    public void BFloat16RunsInItsDtype(string name)
    {
        using var scope = NewDisposeScope();
        var io = Io(name);
        using var m = SD3Transformer2DModel.FromPretrained(ModelFolder(name), ScalarType.BFloat16, CPU);
        Assert.Equal(ScalarType.BFloat16, m.DType);
        using var _ = no_grad();
        var got = Run(m, io);
        Assert.Equal(ScalarType.BFloat16, got.dtype);
        double err = MaxAbs(got, io["out_f64"], $"{name} bf16 vs f64");
        // bfloat16 keeps 8 significant bits (4e-3 relative per rounding) through two blocks on outputs of ~2:
        // measured 0.017 (sd3) / 0.014 (sd35); a wrong op would be off by O(1).
        Assert.True(err < 0.05, $"bf16 output off by {err}");
    }

    [Fact]
    public void ScalarTimestepIsBroadcastAndBadShapesAreRejected()
    {
        using var scope = NewDisposeScope();
        var io = Io("sd3_transformer");
        using var m = SD3Transformer2DModel.FromPretrained(ModelFolder("sd3_transformer"), ScalarType.Float32, CPU);
        using var _ = no_grad();
        var x = io["hidden_states"];
        var ehs = io["encoder_hidden_states"];
        var pooled = io["pooled_projections"];
        var both = m.forward(x, ehs, pooled, tensor(412.5f));
        var perSample = m.forward(x, ehs, pooled, tensor(new[] { 412.5f, 412.5f }));
        Assert.True(Same(both, perSample));
        // The second sample of the fixture has t = 412.5: batch rows are independent.
        TensorAssert.Close(io["out"][1], both[1], atol: Atol32, rtol: 0, what: "second sample, scalar t");
        Assert.Throws<ArgumentException>(() => m.forward(x[.., .., ..11], ehs, pooled, io["timestep"]));
        Assert.Throws<ArgumentException>(() => m.forward(x, ehs[.., .., ..40], pooled, io["timestep"]));
        Assert.Throws<ArgumentException>(() => m.forward(x, ehs, pooled, zeros(3)));
        // 26 patches > pos_embed_max_size 24.
        Assert.Throws<ArgumentException>(() => m.forward(zeros(2, 16, 52, 16), ehs, pooled, io["timestep"]));
    }

    [Theory]
    [InlineData("sd3_transformer")]
    [InlineData("sd35_transformer")]
    public void GradientsMatchDiffusers(string name)
    {
        using var scope = NewDisposeScope();
        var io = Io(name);
        using var m = SD3Transformer2DModel.FromPretrained(ModelFolder(name), ScalarType.Float32, CPU);
        var x = io["hidden_states"].detach().requires_grad_(true);
        var ehs = io["encoder_hidden_states"].detach().requires_grad_(true);
        var pooled = io["pooled_projections"].detach().requires_grad_(true);
        var loss = (m.forward(x, ehs, pooled, io["timestep"]) * io["grad_w"]).sum();
        MaxAbs(loss.reshape(1), io["grad_loss"], $"{name} loss");
        TensorAssert.Close(io["grad_loss"], loss.reshape(1), atol: 1e-3, rtol: 1e-5, what: "loss");
        loss.backward();
        var weight = m.named_parameters().Single(p => p.name == "transformer_blocks.0.attn.to_q.weight").parameter;
        foreach (var (key, grad) in new[] { ("grad_hidden_states", x.grad!), ("grad_encoder_hidden_states", ehs.grad!), ("grad_pooled_projections", pooled.grad!), ("grad_weight", weight.grad!) })
        {
            MaxAbs(grad, io[key], $"{name} {key}");
            // Measured at most 8.3e-7 (the gradients are O(0.02-1.6)).
            TensorAssert.Close(io[key], grad, atol: 1e-5, rtol: 1e-5, what: $"{name} {key}");
        }
    }

    [Theory]
    [InlineData("sd3_transformer")]
    [InlineData("sd35_transformer")]
    public void ConfigReadsTheFixtureAndWritesItBack(string name)
    {
        var path = Path.Combine(ModelFolder(name), "config.json");
        var c = SD3Transformer2DModelConfig.Load(path);
        Assert.Equal(2, c.NumLayers);
        Assert.Equal(32, c.CaptionProjectionDim);
        Assert.Equal(24, c.PosEmbedMaxSize);
        Assert.Equal(name == "sd35_transformer" ? "rms_norm" : null, c.QkNorm);
        Assert.Equal(name == "sd35_transformer" ? new[] { 0 } : [], c.DualAttentionLayers);
        var original = JsonNode.Parse(File.ReadAllText(path))!;
        Assert.True(JsonNode.DeepEquals(original, c.ToJson()), c.ToJson().ToJsonString());
    }

    [Theory]
    [InlineData("sd3_transformer")]
    [InlineData("sd35_transformer")]
    public void SaveAndLoadAreBitIdentical(string name)
    {
        using var scope = NewDisposeScope();
        var io = Io(name);
        var dir = TestPaths.NewTempDir("sd3t-roundtrip");
        try
        {
            using var m = SD3Transformer2DModel.FromPretrained(ModelFolder(name), ScalarType.Float32, CPU);
            m.SavePretrained(dir);
            using var back = SD3Transformer2DModel.FromPretrained(dir, ScalarType.Float32, CPU);
            var original = SafetensorsFile.Load(Path.Combine(ModelFolder(name), WeightsName));
            var saved = SafetensorsFile.Load(Path.Combine(dir, WeightsName));
            Assert.Equal(original.Keys.Order(StringComparer.Ordinal), saved.Keys.Order(StringComparer.Ordinal));
            foreach (var (k, v) in original) Assert.True(Same(v, saved[k]), $"{k} changed on save");
            var a = m.state_dict();
            foreach (var (k, v) in back.state_dict()) Assert.True(Same(v, a[k]), $"{k} changed on reload");
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(Path.Combine(ModelFolder(name), "config.json"))),
                JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))));
            using var _ = no_grad();
            Assert.True(Same(Run(m, io), Run(back, io)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("sd3_transformer")]
    [InlineData("sd35_transformer")]
    public void FreshModelHasDiffusersPositionsAndNoZeroLayers(string name)
    {
        using var scope = NewDisposeScope();
        var config = SD3Transformer2DModelConfig.Load(Path.Combine(ModelFolder(name), "config.json"));
        using var a = new SD3Transformer2DModel(config, new Generator(7));
        using var b = new SD3Transformer2DModel(config, new Generator(7));
        var file = SafetensorsFile.Load(Path.Combine(ModelFolder(name), WeightsName));
        var sa = a.state_dict();
        Assert.Equal(file.Keys.Order(StringComparer.Ordinal), sa.Keys.Order(StringComparer.Ordinal));
        // The sin-cos buffer diffusers computed (numpy, float64 then float32) equals ours to float32 rounding.
        double posErr = MaxAbs(sa["pos_embed.pos_embed"], file["pos_embed.pos_embed"], $"{name} pos_embed");
        Assert.True(posErr <= 1e-6, $"pos_embed differs by {posErr}");
        foreach (var (k, v) in b.state_dict()) Assert.True(Same(v, sa[k]), $"{k}: same seed, different values");
        Assert.True(sa["proj_out.weight"].abs().max().item<float>() > 0);
        Assert.Equal(file.Where(kv => kv.Key != "pos_embed.pos_embed").Sum(kv => kv.Value.numel()), a.parameters().Sum(p => p.numel()));
        using var _ = no_grad();
        var io = Io(name);
        var outA = Run(a, io);
        Assert.True(outA.abs().max().item<float>() > 1e-3, "a fresh model's output should not vanish");
    }

    [Theory]
    [InlineData("sd3_transformer", 8)]
    [InlineData("sd35_transformer", 8)]
    public void LoraAttachesToEveryAttentionProjection(string name, int expected)
    {
        using var scope = NewDisposeScope();
        var io = Io(name);
        using var m = SD3Transformer2DModel.FromPretrained(ModelFolder(name), ScalarType.Float32, CPU);
        Tensor baseline;
        using (no_grad()) baseline = Run(m, io);
        string[] targets = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"];
        using var lora = LoraAdapters.Attach(m, 4, 4, targets, new Generator(3));
        var paths = lora.ModulePaths.ToHashSet();
        // Block 0 has all eight (plus attn2.* in SD3.5), the last block no to_add_out.
        foreach (var t in targets) Assert.Contains($"transformer_blocks.0.attn.{t}", paths);
        foreach (var t in targets.Where(t => t != "to_add_out")) Assert.Contains($"transformer_blocks.1.attn.{t}", paths);
        Assert.DoesNotContain("transformer_blocks.1.attn.to_add_out", paths);
        bool dual = name == "sd35_transformer";
        foreach (var t in new[] { "to_q", "to_k", "to_v", "to_out.0" })
        {
            Assert.Equal(dual, paths.Contains($"transformer_blocks.0.attn2.{t}"));
        }
        Assert.Equal(2 * expected - 1 + (dual ? 4 : 0), lora.Count);
        using (no_grad())
        {
            TensorAssert.Close(baseline, Run(m, io), atol: 0, rtol: 0, what: "zero-up LoRA");
            foreach (var p in lora.ModulePaths) lora[p].Up.normal_(0, 0.1, new Generator(5));
        }
        var outLora = Run(m, io);
        double change = (outLora - baseline).abs().max().item<float>();
        output.WriteLine($"{name} LoRA output change {change:g4}");
        Assert.True(change > 1e-3, $"LoRA changed the output by only {change}");
        (outLora * io["grad_w"]).sum().backward();
        foreach (var p in lora.ModulePaths)
        {
            Assert.NotNull(lora[p].Down.grad);
            // The last block's text queries only feed text outputs that the model discards (diffusers too).
            bool dead = p == "transformer_blocks.1.attn.add_q_proj";
            Assert.True(dead == (lora[p].Down.grad!.abs().max().item<float>() == 0), $"{p}.down: gradient {(dead ? "should be zero" : "missing")}");
            Assert.True(dead == (lora[p].Up.grad!.abs().max().item<float>() == 0), $"{p}.up: gradient {(dead ? "should be zero" : "missing")}");
        }
        Assert.DoesNotContain(m.state_dict().Keys, k => k.Contains("lora", StringComparison.OrdinalIgnoreCase));
    }

    [Theory]
    [InlineData("sd3_medium_transformer")]
    [InlineData("sd3.5_medium_transformer")]
    [InlineData("sd3.5_large_transformer")]
    public void RealSizeModelsHaveTheManifestsKeysAndShapes(string manifestName)
    {
        var manifest = (JsonObject)JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", manifestName + ".json")))!;
        var fromManifest = SD3Transformer2DModelConfig.FromJson(new JsonConfig((JsonObject)manifest["config"]!, manifestName + ".json"));
        var preset = manifestName switch
        {
            "sd3_medium_transformer" => SD3Transformer2DModelConfig.Sd3Medium(),
            "sd3.5_medium_transformer" => SD3Transformer2DModelConfig.Sd35Medium(),
            _ => SD3Transformer2DModelConfig.Sd35Large(),
        };
        Assert.Equal(fromManifest.ToJson().ToJsonString(), preset.ToJson().ToJsonString());
        // On the meta device: shapes without gigabytes of parameters.
        using var m = new SD3Transformer2DModel(preset, ScalarType.Float32, new Device(DeviceType.META));
        Assert.Equal(DeviceType.META, m.Device.type);
        var expected = ((JsonObject)manifest["keys"]!).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(d => d!.GetValue<long>()).ToArray());
        var actual = m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(manifest["n_state_dict_keys"]!.GetValue<int>(), actual.Count);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(actual[key]), $"{key}: manifest [{string.Join(", ", shape)}], model [{string.Join(", ", actual[key])}]");
        Assert.Equal(manifest["n_parameters"]!.GetValue<long>(), m.parameters().Sum(p => p.numel()));
        Assert.Equal(manifest["n_state_dict_elements"]!.GetValue<long>(), m.state_dict().Values.Sum(t => t.numel()));
    }

    [Fact]
    public void UnknownOrWrongTypedConfigKeyIsNamed()
    {
        var text = File.ReadAllText(Path.Combine(ModelFolder("sd3_transformer"), "config.json"));
        var unknown = (JsonObject)JsonNode.Parse(text)!;
        unknown["use_pooled_projections"] = true;
        var e = Assert.Throws<ConfigException>(() => SD3Transformer2DModelConfig.FromJson(new JsonConfig(unknown, "x/config.json")));
        Assert.Contains("'use_pooled_projections'", e.Message);
        Assert.Contains("x/config.json", e.Message);

        var wrong = (JsonObject)JsonNode.Parse(text)!;
        wrong["num_layers"] = "two";
        e = Assert.Throws<ConfigException>(() => SD3Transformer2DModelConfig.FromJson(new JsonConfig(wrong, "y/config.json")));
        Assert.Contains("'num_layers'", e.Message);
        Assert.Contains("y/config.json", e.Message);

        var qk = (JsonObject)JsonNode.Parse(text)!;
        qk["qk_norm"] = "layer_norm";
        e = Assert.Throws<ConfigException>(() => SD3Transformer2DModelConfig.FromJson(new JsonConfig(qk, "z/config.json")));
        Assert.Contains("'qk_norm'", e.Message);
    }

    [Fact]
    public void WeightsMissingAKeyAreAnErrorNamingIt()
    {
        var dir = TestPaths.NewTempDir("sd3t-missing");
        try
        {
            var src = ModelFolder("sd35_transformer");
            File.Copy(Path.Combine(src, "config.json"), Path.Combine(dir, "config.json"));
            var w = SafetensorsFile.Load(Path.Combine(src, WeightsName));
            w.Remove("transformer_blocks.0.attn.norm_added_k.weight");
            w["transformer_blocks.1.ff_context.net.2.bias"] = zeros(32);
            SafetensorsFile.SaveAtomic(Path.Combine(dir, WeightsName), w);
            var e = Assert.Throws<ModelLoadException>(() => SD3Transformer2DModel.FromPretrained(dir, ScalarType.Float32, CPU));
            Assert.Contains("transformer_blocks.0.attn.norm_added_k.weight", e.Message);
            Assert.Contains("transformer_blocks.1.ff_context.net.2.bias", e.Message);
            Assert.Contains(Path.Combine(dir, WeightsName), e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
