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
/// <c>FluxTransformer2DModel</c> against diffusers 0.31 on the refenv <c>flux_transformer</c> fixture (1 double + 1 single
/// block, guidance embedding, RoPE axes 4/6/6, inputs as FluxPipeline builds them): float32 and float64 outputs, RoPE
/// tables, gradients, save/load, LoRA, strict config and weights, and FLUX.1-dev / schnell keys and shapes on meta.
/// </summary>
public sealed class FluxTransformerTests(ITestOutputHelper output)
{
    private const string Name = "flux_transformer";
    private const string WeightsName = "diffusion_pytorch_model.safetensors";

    private static string Folder => TestPaths.Fixture("refenv", Name);

    private static string ModelFolder => Path.Combine(Folder, "model");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static Tensor Run(FluxTransformer2DModel m, Dictionary<string, Tensor> io, ScalarType dtype = ScalarType.Float32) =>
        m.forward(io["hidden_states"].to(dtype), io["encoder_hidden_states"].to(dtype), io["pooled_projections"].to(dtype),
            io["timestep"].to(dtype), io["img_ids"].to(dtype), io["txt_ids"].to(dtype), io["guidance"].to(dtype));

    private static bool Same(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private double MaxAbs(Tensor a, Tensor b, string what)
    {
        double e = (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
        output.WriteLine($"{what}: max abs error {e:g4} (max |ref| {b.abs().max().to(ScalarType.Float64).item<double>():g4})");
        return e;
    }

    [Fact]
    public void Float32MatchesDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var m = FluxTransformer2DModel.FromPretrained(ModelFolder, ScalarType.Float32, CPU);
        using var _ = no_grad();
        var got = Run(m, io);
        Assert.Equal(ScalarType.Float32, got.dtype);
        Assert.Equal(new long[] { 2, 48, 64 }, got.shape);
        // diffusers' own float32 rounding: |out - out_f64|.
        double refErr = MaxAbs(io["out"], io["out_f64"], "diffusers f32 vs f64");
        MaxAbs(got, io["out"], "ours f32 vs diffusers f32");
        MaxAbs(got, io["out_f64"], "ours f32 vs diffusers f64");
        TensorAssert.Close(io["out"], got, atol: Atol32, rtol: 0, what: "out");
        TensorAssert.Close(io["out_f64"], got.to(ScalarType.Float64), atol: Atol32, rtol: 0, what: "out vs out_f64");
        Assert.True(refErr < Atol32);
    }

    // Outputs are O(2). diffusers' own float32 error |out - out_f64| is 5.4e-7, but ours differs from both out and out_f64
    // by 2.5e-6 (measured), and our float64 run from out_f64 by the same 2.5e-6: the gap is in the float32 steps both runs
    // share. The guidance sinusoid takes float32 angles up to 3500 rad (one ulp = 2.4e-4 rad), so a 1-ulp difference in
    // libtorch's float32 exp/sin kernels (torch 1.13 vs 2.10) shows in the output: re-rounding only the sinusoid's
    // frequencies from float64 moved ours to 5.2e-6 (measured). 1e-5 leaves ~4x headroom; a wrong op is off by O(0.1).
    private const double Atol32 = 1e-5;

    [Fact]
    public void Float64MatchesDiffusersFloat64()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var m = FluxTransformer2DModel.FromPretrained(ModelFolder, ScalarType.Float64, CPU);
        Assert.Equal(ScalarType.Float64, m.DType);
        using var _ = no_grad();
        var got = Run(m, io, ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, got.dtype);
        MaxAbs(got, io["out_f64"], "ours f64 vs diffusers f64");
        TensorAssert.Close(io["out_f64"], got, atol: Atol64, rtol: 0, what: "out_f64");
    }

    // Not 1e-12: diffusers' float64 run keeps float32 steps (the timestep/guidance sinusoids, the RoPE tables and
    // apply_rotary_emb's x.float(), the RMS norms' mean square), and the float32 guidance sinusoid at angles up to
    // 3500 rad is kernel-sensitive (see Atol32). Measured 2.5e-6 on outputs of ~2.
    private const double Atol64 = 1e-5;

    [Fact]
    public void ToConvertsTheWeights()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var m = FluxTransformer2DModel.FromPretrained(ModelFolder);
        m.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, m.DType);
        Assert.All(m.state_dict().Values, t => Assert.Equal(ScalarType.Float64, t.dtype));
        using var _ = no_grad();
        var got = Run(m, io);
        Assert.Equal(ScalarType.Float64, got.dtype);
        TensorAssert.Close(io["out_f64"], got, atol: Atol64, rtol: 0, what: "out after .to(float64)");
    }

    [Fact]
    public void RopeTablesMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var ids = cat([io["txt_ids"], io["img_ids"]], 0);
        var (cos, sin) = FluxPosEmbed.Compute(ids, [4, 6, 6]);
        Assert.Equal(ScalarType.Float32, cos.dtype);
        Assert.Equal(new long[] { 58, 16 }, cos.shape);
        // Both are float64 angles rounded once to float32: at most one float32 ulp apart.
        double ec = MaxAbs(cos, io["rope_cos"], "rope cos");
        double es = MaxAbs(sin, io["rope_sin"], "rope sin");
        Assert.True(ec <= 1.2e-7 && es <= 1.2e-7, $"rope tables differ by {ec} / {es}");
    }

    [Fact]
    public void GradientsMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var m = FluxTransformer2DModel.FromPretrained(ModelFolder, ScalarType.Float32, CPU);
        var x = io["hidden_states"].detach().requires_grad_(true);
        var ehs = io["encoder_hidden_states"].detach().requires_grad_(true);
        var pooled = io["pooled_projections"].detach().requires_grad_(true);
        var outT = m.forward(x, ehs, pooled, io["timestep"], io["img_ids"], io["txt_ids"], io["guidance"]);
        var loss = (outT * io["grad_w"]).sum();
        MaxAbs(loss.reshape(1), io["grad_loss"], "loss");
        TensorAssert.Close(io["grad_loss"], loss.reshape(1), atol: 1e-3, rtol: 1e-5, what: "loss");
        loss.backward();
        var weight = m.named_parameters().Single(p => p.name == "single_transformer_blocks.0.proj_mlp.weight").parameter;
        foreach (var (key, grad) in new[] { ("grad_hidden_states", x.grad!), ("grad_encoder_hidden_states", ehs.grad!), ("grad_pooled_projections", pooled.grad!), ("grad_weight", weight.grad!) })
        {
            MaxAbs(grad, io[key], key);
            // Measured 3.4e-7 (encoder, |g| <= 0.08), 3.1e-6 / 3.3e-6 (hidden, pooled, |g| <= 2.6) and 1.3e-5 (proj_mlp weight,
            // |g| <= 1.7, a sum over 96 tokens x 2 samples): the same float32-sinusoid sensitivity as the outputs, ~2x headroom.
            TensorAssert.Close(io[key], grad, atol: 3e-5, rtol: 1e-5, what: key);
        }
    }

    [Fact]
    public void BatchRowsAreIndependentAndInputsAreChecked()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var m = FluxTransformer2DModel.FromPretrained(ModelFolder, ScalarType.Float32, CPU);
        using var _ = no_grad();
        var x = io["hidden_states"];
        var ehs = io["encoder_hidden_states"];
        var pooled = io["pooled_projections"];
        var t = io["timestep"];
        var img = io["img_ids"];
        var txt = io["txt_ids"];
        var g = io["guidance"];
        var full = Run(m, io);
        // The second sample alone, with a scalar timestep and guidance, and ids with a batch axis (diffusers' deprecated form).
        var second = m.forward(x[1..], ehs[1..], pooled[1..], t[1], img.unsqueeze(0), txt.unsqueeze(0), tensor(3.5f));
        TensorAssert.Close(full[1..], second, atol: Atol32, rtol: 0, what: "second sample alone");
        Assert.Throws<ArgumentException>(() => m.forward(x, ehs, pooled, t, img, txt, null));
        Assert.Throws<ArgumentException>(() => m.forward(x[.., .., ..32], ehs, pooled, t, img, txt, g));
        Assert.Throws<ArgumentException>(() => m.forward(x, ehs[.., .., ..40], pooled, t, img, txt, g));
        Assert.Throws<ArgumentException>(() => m.forward(x, ehs, pooled, zeros(3), img, txt, g));
        Assert.Throws<ArgumentException>(() => m.forward(x, ehs, pooled, t, img[..40], txt, g));
        Assert.Throws<ArgumentException>(() => m.forward(x, ehs, pooled, t, img, txt[..9], g));
    }

    [Fact]
    public void BFloat16RunsInItsDtype()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var m = FluxTransformer2DModel.FromPretrained(ModelFolder, ScalarType.BFloat16, CPU);
        Assert.Equal(ScalarType.BFloat16, m.DType);
        using var _ = no_grad();
        // Float32 inputs are converted to the model's dtype.
        var got = Run(m, io);
        Assert.Equal(ScalarType.BFloat16, got.dtype);
        double err = MaxAbs(got, io["out_f64"], "bf16 vs f64");
        // bfloat16 keeps 8 significant bits (4e-3 relative per rounding), and the timestep/guidance x1000 are rounded to
        // bfloat16 before the sinusoid, as diffusers does (312.5 -> 312, 3500 -> 3504), which moves the conditioning.
        // Measured 0.075 on outputs of ~2; a wrong op would be off by O(1).
        Assert.True(err < 0.15, $"bf16 output off by {err}");
    }

    [Fact]
    public void SchnellStyleModelTakesNoGuidance()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var config = FluxTransformer2DModelConfig.Load(Path.Combine(ModelFolder, "config.json"));
        var schnell = new FluxTransformer2DModelConfig
        {
            PatchSize = config.PatchSize, InChannels = config.InChannels, OutChannels = config.OutChannels, NumLayers = 1,
            NumSingleLayers = 1, AttentionHeadDim = 16, NumAttentionHeads = 2, JointAttentionDim = 48, PooledProjectionDim = 16,
            GuidanceEmbeds = false, AxesDimsRope = [4, 6, 6],
        };
        using var m = new FluxTransformer2DModel(schnell, new Generator(11));
        Assert.DoesNotContain(m.state_dict().Keys, k => k.StartsWith("time_text_embed.guidance_embedder", StringComparison.Ordinal));
        using var _ = no_grad();
        var x = io["hidden_states"];
        var got = m.forward(x, io["encoder_hidden_states"], io["pooled_projections"], io["timestep"], io["img_ids"], io["txt_ids"]);
        Assert.Equal(x.shape, got.shape);
        Assert.True(got.abs().max().item<float>() > 1e-3);
        Assert.Throws<ArgumentException>(() => m.forward(x, io["encoder_hidden_states"], io["pooled_projections"], io["timestep"], io["img_ids"], io["txt_ids"], io["guidance"]));
    }

    [Fact]
    public void ConfigReadsTheFixtureAndWritesItBack()
    {
        var path = Path.Combine(ModelFolder, "config.json");
        var c = FluxTransformer2DModelConfig.Load(path);
        Assert.Equal(1, c.PatchSize);
        Assert.Equal(64, c.InChannels);
        Assert.Equal(64, c.OutChannels);
        Assert.Equal(1, c.NumLayers);
        Assert.Equal(1, c.NumSingleLayers);
        Assert.Equal(16, c.AttentionHeadDim);
        Assert.Equal(2, c.NumAttentionHeads);
        Assert.Equal(48, c.JointAttentionDim);
        Assert.Equal(16, c.PooledProjectionDim);
        Assert.True(c.GuidanceEmbeds);
        Assert.Equal(new[] { 4, 6, 6 }, c.AxesDimsRope);
        var original = JsonNode.Parse(File.ReadAllText(path))!;
        Assert.True(JsonNode.DeepEquals(original, c.ToJson()), c.ToJson().ToJsonString());
        // out_channels: null means in_channels; another value is kept and written.
        var json = (JsonObject)original.DeepClone();
        json["out_channels"] = null;
        Assert.Equal(64, FluxTransformer2DModelConfig.FromJson(new JsonConfig(json, "n/config.json")).OutChannels);
        json["out_channels"] = 32;
        var c32 = FluxTransformer2DModelConfig.FromJson(new JsonConfig(json, "o/config.json"));
        Assert.Equal(32, c32.OutChannels);
        Assert.Equal(32, c32.ToJson()["out_channels"]!.GetValue<int>());
    }

    [Fact]
    public void UnknownWrongTypedOrInconsistentConfigKeyIsNamed()
    {
        var text = File.ReadAllText(Path.Combine(ModelFolder, "config.json"));
        JsonObject With(string key, JsonNode? value)
        {
            var o = (JsonObject)JsonNode.Parse(text)!;
            o[key] = value;
            return o;
        }
        void Fails(JsonObject json, string key)
        {
            var e = Assert.Throws<ConfigException>(() => FluxTransformer2DModelConfig.FromJson(new JsonConfig(json, "x/config.json")));
            Assert.Contains($"'{key}'", e.Message);
            Assert.Contains("x/config.json", e.Message);
        }
        Fails(With("use_guidance", true), "use_guidance");
        Fails(With("num_layers", "one"), "num_layers");
        Fails(With("guidance_embeds", 1), "guidance_embeds");
        Fails(With("axes_dims_rope", "4,6,6"), "axes_dims_rope");
        // The three rotary widths must cover one head (16) and be even.
        Fails(With("axes_dims_rope", new JsonArray(4, 6, 8)), "axes_dims_rope");
        Fails(With("axes_dims_rope", new JsonArray(4, 5, 7)), "axes_dims_rope");
        Fails(With("_class_name", "SD3Transformer2DModel"), "_class_name");
    }

    [Fact]
    public void SaveAndLoadAreBitIdentical()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var dir = TestPaths.NewTempDir("fluxt-roundtrip");
        try
        {
            using var m = FluxTransformer2DModel.FromPretrained(ModelFolder);
            Assert.Equal(ScalarType.Float32, m.DType);
            Assert.Equal(DeviceType.CPU, m.Device.type);
            m.SavePretrained(dir);
            using var back = FluxTransformer2DModel.FromPretrained(dir, ScalarType.Float32, CPU);
            var original = SafetensorsFile.Load(Path.Combine(ModelFolder, WeightsName));
            var saved = SafetensorsFile.Load(Path.Combine(dir, WeightsName));
            Assert.Equal(original.Keys.Order(StringComparer.Ordinal), saved.Keys.Order(StringComparer.Ordinal));
            foreach (var (k, v) in original) Assert.True(Same(v, saved[k]), $"{k} changed on save");
            var a = m.state_dict();
            foreach (var (k, v) in back.state_dict()) Assert.True(Same(v, a[k]), $"{k} changed on reload");
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(Path.Combine(ModelFolder, "config.json"))),
                JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))));
            using var _ = no_grad();
            Assert.True(Same(Run(m, io), Run(back, io)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void FreshModelHasTheFixturesKeysAndNoZeroLayers()
    {
        using var scope = NewDisposeScope();
        var config = FluxTransformer2DModelConfig.Load(Path.Combine(ModelFolder, "config.json"));
        using var a = new FluxTransformer2DModel(config, new Generator(7));
        using var b = new FluxTransformer2DModel(config, new Generator(7));
        var file = SafetensorsFile.Load(Path.Combine(ModelFolder, WeightsName));
        var sa = a.state_dict();
        Assert.Equal(file.Keys.Order(StringComparer.Ordinal), sa.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, v) in file) Assert.True(v.shape.SequenceEqual(sa[k].shape), $"{k}: shape");
        foreach (var (k, v) in b.state_dict()) Assert.True(Same(v, sa[k]), $"{k}: same seed, different values");
        // The fixture's n_params (diffusers' count).
        Assert.Equal(81664, a.parameters().Sum(p => p.numel()));
        Assert.True(sa["proj_out.weight"].abs().max().item<float>() > 0);
        using var _ = no_grad();
        Assert.True(Run(a, Io()).abs().max().item<float>() > 1e-3, "a fresh model's output should not vanish");
    }

    [Fact]
    public void LoraAttachesToEveryAttentionProjection()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var m = FluxTransformer2DModel.FromPretrained(ModelFolder, ScalarType.Float32, CPU);
        Tensor baseline;
        using (no_grad()) baseline = Run(m, io);
        string[] targets = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"];
        using var lora = LoraAdapters.Attach(m, 4, 4, targets, new Generator(3));
        var paths = lora.ModulePaths.ToHashSet();
        // The double block has all eight; the single block's pre-only attention has q/k/v only.
        var expected = targets.Select(t => $"transformer_blocks.0.attn.{t}")
            .Concat(new[] { "to_q", "to_k", "to_v" }.Select(t => $"single_transformer_blocks.0.attn.{t}")).ToHashSet();
        Assert.Equal(expected.Order(StringComparer.Ordinal), paths.Order(StringComparer.Ordinal));
        using (no_grad())
        {
            TensorAssert.Close(baseline, Run(m, io), atol: 0, rtol: 0, what: "zero-up LoRA");
            foreach (var p in lora.ModulePaths) lora[p].Up.normal_(0, 0.1, new Generator(5));
        }
        var outLora = Run(m, io);
        double change = (outLora - baseline).abs().max().item<float>();
        output.WriteLine($"LoRA output change {change:g4}");
        Assert.True(change > 1e-3, $"LoRA changed the output by only {change}");
        (outLora * io["grad_w"]).sum().backward();
        foreach (var p in lora.ModulePaths)
        {
            Assert.True(lora[p].Down.grad!.abs().max().item<float>() > 0, $"{p}.down: gradient missing");
            Assert.True(lora[p].Up.grad!.abs().max().item<float>() > 0, $"{p}.up: gradient missing");
        }
        Assert.DoesNotContain(m.state_dict().Keys, k => k.Contains("lora", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void MlpLinearsAcceptLora()
    {
        using var scope = NewDisposeScope();
        using var m = FluxTransformer2DModel.FromPretrained(ModelFolder, ScalarType.Float32, CPU);
        using var lora = LoraAdapters.Attach(m, 2, 2, ["proj_mlp", "proj_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2"], new Generator(3));
        // The model's own proj_out is a plain Linear (as x_embedder / context_embedder), so only the blocks' linears match.
        string[] expected =
        [
            "single_transformer_blocks.0.proj_mlp", "single_transformer_blocks.0.proj_out",
            "transformer_blocks.0.ff.net.0.proj", "transformer_blocks.0.ff.net.2",
            "transformer_blocks.0.ff_context.net.0.proj", "transformer_blocks.0.ff_context.net.2",
        ];
        Assert.Equal(expected, lora.ModulePaths.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("flux.1_dev_transformer")]
    [InlineData("flux.1_schnell_transformer")]
    public void RealSizeModelsHaveTheManifestsKeysAndShapes(string manifestName)
    {
        var manifest = (JsonObject)JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", manifestName + ".json")))!;
        var fromManifest = FluxTransformer2DModelConfig.FromJson(new JsonConfig((JsonObject)manifest["config"]!, manifestName + ".json"));
        var preset = manifestName == "flux.1_dev_transformer" ? FluxTransformer2DModelConfig.FluxDev() : FluxTransformer2DModelConfig.FluxSchnell();
        Assert.Equal(fromManifest.ToJson().ToJsonString(), preset.ToJson().ToJsonString());
        // On the meta device: shapes without 24 GB of parameters.
        using var m = new FluxTransformer2DModel(preset, ScalarType.Float32, new Device(DeviceType.META));
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
    public void WeightsMissingAKeyAreAnErrorNamingIt()
    {
        var dir = TestPaths.NewTempDir("fluxt-missing");
        try
        {
            File.Copy(Path.Combine(ModelFolder, "config.json"), Path.Combine(dir, "config.json"));
            var w = SafetensorsFile.Load(Path.Combine(ModelFolder, WeightsName));
            w.Remove("single_transformer_blocks.0.attn.norm_k.weight");
            w["single_transformer_blocks.0.attn.to_out.0.bias"] = zeros(32);
            SafetensorsFile.SaveAtomic(Path.Combine(dir, WeightsName), w);
            var e = Assert.Throws<ModelLoadException>(() => FluxTransformer2DModel.FromPretrained(dir, ScalarType.Float32, CPU));
            Assert.Contains("single_transformer_blocks.0.attn.norm_k.weight", e.Message);
            Assert.Contains("single_transformer_blocks.0.attn.to_out.0.bias", e.Message);
            Assert.Contains(Path.Combine(dir, WeightsName), e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
