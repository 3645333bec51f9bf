using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>
/// The SDXL UNet (<c>addition_embed_type = "text_time"</c>) against diffusers 0.31 on refenv/sdxl_unet (three levels, no
/// attention at the top, 1 / 1 / 2 transformer layers, linear projections, non-square latents, two different time-id
/// rows): float32 and float64 outputs, the four gradients, strict config errors, and SDXL base 1.0's keys and shapes.
/// </summary>
public sealed class SdxlUnetTests(ITestOutputHelper output)
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "sdxl_unet");
    private static readonly string ModelFolder = Path.Combine(Folder, "model");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static Tensor Run(UNet2DConditionModel m, Dictionary<string, Tensor> io, ScalarType dtype = ScalarType.Float32) =>
        m.forward(io["sample"].to(dtype), io["timestep"].to(dtype), io["encoder_hidden_states"].to(dtype), io["text_embeds"].to(dtype), io["time_ids"].to(dtype));

    private double MaxAbs(Tensor a, Tensor b, string what)
    {
        double e = (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
        output.WriteLine($"{what}: max abs error {e:g4} (max |ref| {b.abs().max().to(ScalarType.Float64).item<double>():g4})");
        return e;
    }

    // Outputs are O(1.5). diffusers' own float32 error |out - out_f64| is 9.4e-7; ours is 1.0e-6 vs out and 8.7e-7 vs
    // out_f64 (measured): the bound is ~5x the reference's own float32 rounding.
    private const double Atol32 = 5e-6;

    // Measured 3.5e-9, not 1e-15: the float64 run keeps diffusers' float32 sinusoids (timesteps up to 999, time ids up
    // to 1360 rad), and libtorch's float32 sin/cos may differ by an ulp between builds. 30x headroom.
    private const double Atol64 = 1e-7;

    [Fact]
    public void Float32MatchesDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFolder);
        Assert.True(unet.Config.IsTextTime);
        Assert.Equal(146220, unet.parameters().Sum(p => p.numel()));
        using var _ = no_grad();
        var got = Run(unet, io);
        Assert.Equal(ScalarType.Float32, got.dtype);
        double refErr = MaxAbs(io["out"], io["out_f64"], "diffusers f32 vs f64");
        MaxAbs(got, io["out"], "ours f32 vs diffusers f32");
        MaxAbs(got, io["out_f64"], "ours f32 vs diffusers f64");
        TensorAssert.Close(io["out"], got, atol: Atol32, rtol: 0, what: "out");
        TensorAssert.Close(io["out_f64"], got.to(ScalarType.Float64), atol: Atol32, rtol: 0, what: "out vs out_f64");
        Assert.True(refErr < Atol32);
        // The time ids matter: the two rows' ids differ, so swapping them changes the output.
        var swapped = unet.forward(io["sample"], io["timestep"], io["encoder_hidden_states"], io["text_embeds"], io["time_ids"].flip(0));
        Assert.True(MaxAbs(swapped, io["out"], "time ids swapped") > 100 * Atol32);
    }

    [Fact]
    public void Float64MatchesDiffusersFloat64()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFolder, ScalarType.Float64, CPU);
        using var _ = no_grad();
        var got = Run(unet, io, ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, got.dtype);
        MaxAbs(got, io["out_f64"], "ours f64 vs diffusers f64");
        TensorAssert.Close(io["out_f64"], got, atol: Atol64, rtol: 0, what: "out_f64");
    }

    [Fact]
    public void GradientsMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFolder);
        var sample = io["sample"].detach().requires_grad_(true);
        var ehs = io["encoder_hidden_states"].detach().requires_grad_(true);
        var textEmbeds = io["text_embeds"].detach().requires_grad_(true);
        var loss = (unet.forward(sample, io["timestep"], ehs, textEmbeds, io["time_ids"]) * io["grad_w"]).sum();
        MaxAbs(loss.reshape(1), io["grad_loss"], "loss");
        // A sum of 1536 products, |loss| 7: measured 1.3e-5 (float32 accumulation order).
        TensorAssert.Close(io["grad_loss"], loss.reshape(1), atol: 1e-4, rtol: 1e-5, what: "loss");
        loss.backward();
        var weight = unet.named_parameters().Single(p => p.name == "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight").parameter;
        foreach (var (key, grad) in new[] { ("grad_sample", sample.grad!), ("grad_encoder_hidden_states", ehs.grad!), ("grad_text_embeds", textEmbeds.grad!), ("grad_weight", weight.grad!) })
        {
            double scale = io[key].abs().max().item<float>();
            MaxAbs(grad, io[key], key);
            // Relative to each gradient's own size: measured 4.0e-6 / 8.0e-7 / 9.4e-7 / 1.2e-6 on maxima 2.3 / 0.28 / 0.29 / 1.0
            // (<= 3.4e-6 relative), so 1e-4 of the maximum is ~30x headroom.
            TensorAssert.Close(io[key], grad, atol: 1e-4 * scale, rtol: 1e-4, what: key);
        }
    }

    [Fact]
    public void TextTimeModelWithoutAddedConditionsIsAClearError()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFolder);
        using var _ = no_grad();
        var e = Assert.Throws<ArgumentException>(() => unet.call(io["sample"], io["timestep"], io["encoder_hidden_states"]));
        Assert.Contains("text_embeds", e.Message);
        e = Assert.Throws<ArgumentException>(() => unet.forward(io["sample"], io["timestep"], io["encoder_hidden_states"], io["text_embeds"], null));
        Assert.Contains("time_ids", e.Message);
        e = Assert.Throws<ArgumentException>(() => unet.forward(io["sample"], io["timestep"], io["encoder_hidden_states"], io["text_embeds"], io["time_ids"][.., ..5]));
        Assert.Contains("projection_class_embeddings_input_dim", e.Message);
    }

    [Theory]
    [InlineData("addition_embed_type", "\"image\"", "addition_embed_type")]
    [InlineData("addition_embed_type", "3", "addition_embed_type")]
    [InlineData("addition_time_embed_dim", "null", "addition_time_embed_dim")]
    [InlineData("addition_time_embed_dim", "\"8\"", "addition_time_embed_dim")]
    [InlineData("projection_class_embeddings_input_dim", "null", "projection_class_embeddings_input_dim")]
    [InlineData("addition_embed_type_num_heads", "1.5", "addition_embed_type_num_heads")]
    public void BadTextTimeConfigNamesTheField(string field, string value, string named)
    {
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(ModelFolder, "config.json")))!.AsObject();
        root[field] = JsonNode.Parse(value);
        var e = Assert.Throws<ConfigException>(() => UNet2DConditionConfig.FromJson(new JsonConfig(root, "unet/config.json")));
        Assert.Contains(named, e.Message);
        Assert.Contains("unet/config.json", e.Message);
    }

    [Fact]
    public void ConfigRoundTripsThroughToJson()
    {
        var c = UNet2DConditionConfig.Load(Path.Combine(ModelFolder, "config.json"));
        Assert.Equal(UNet2DConditionConfig.TextTime, c.AdditionEmbedType);
        Assert.Equal(8, c.AdditionTimeEmbedDim);
        Assert.Equal(72, c.ProjectionClassEmbeddingsInputDim);
        Assert.Equal([1, 1, 2], c.TransformerLayersPerBlock);
        var again = UNet2DConditionConfig.FromJson(new JsonConfig(JsonNode.Parse(c.ToJson())!.AsObject(), "round trip"));
        Assert.Equal(c.ToJson(), again.ToJson());
        // An SD 1.x config still reads as no text_time.
        Assert.False(UNet2DConditionConfig.Load(Path.Combine(TestPaths.Fixture("unet_sd1_tiny"), "config.json")).IsTextTime);
    }

    [Fact]
    public void SdxlBaseHasTheManifestsKeysAndShapes()
    {
        var manifest = (JsonObject)JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", "sdxl_base_1.0_unet.json")))!;
        var fromManifest = UNet2DConditionConfig.FromJson(new JsonConfig((JsonObject)manifest["config"]!, "sdxl_base_1.0_unet.json"));
        Assert.Equal(UNet2DConditionConfig.SdxlBase().ToJson(), fromManifest.ToJson());
        // On the meta device: shapes without 2.6 G parameters' memory.
        using var unet = new UNet2DConditionModel(UNet2DConditionConfig.SdxlBase(), ScalarType.Float32, new Device(DeviceType.META));
        var expected = ((JsonObject)manifest["keys"]!).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(d => d!.GetValue<long>()).ToArray());
        var actual = unet.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(manifest["n_state_dict_keys"]!.GetValue<int>(), actual.Count);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(actual[key]), $"{key}: manifest [{string.Join(", ", shape)}], model [{string.Join(", ", actual[key])}]");
        Assert.Equal(manifest["n_parameters"]!.GetValue<long>(), unet.parameters().Sum(p => p.numel()));
    }
}
