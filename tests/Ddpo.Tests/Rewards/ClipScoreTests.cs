using System.Text.Json.Nodes;
using Ddpo.Imaging.Resampling;
using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Rewards;
using Ddpo.Rewards.Learned;
using Ddpo.Tests.Support;
using Ddpo.Tokenizers;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>
/// The <c>clipscore</c> reward against Flow-GRPO's ClipScorer (refenv/clipscore: a tiny random quick_gelu CLIPModel;
/// torchvision's bilinear antialiased resize on uint8/255, ids padded to 77, logits_per_image.diagonal() / 30):
/// pixels, ids, embeddings, logits, scores, float64, gradients; openai CLIP-L/14's key set on the meta device.
/// </summary>
public sealed class ClipScoreTests(ITestOutputHelper output)
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "clipscore");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static double MaxError(Tensor expected, Tensor actual) =>
        (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64).cpu()).abs().max().item<double>();

    // O(1) values; transformers' float32 and float64 runs differ by ~1e-7 (printed): 1e-4 is the task's bound.
    private const double Atol = 1e-4;

    private static Tensor ImagesF32(Dictionary<string, Tensor> io) => io["images"].permute(0, 3, 1, 2).to(ScalarType.Float32) / 255.0;

    private static ClipModelReward Load() => ClipModelReward.LoadClipScore(Path.Combine(Folder, "model"), Path.Combine(Folder, "processor"));

    [Fact]
    public void PixelsIdsAndFeaturesMatchFlowGrpo()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var processor = ClipImageProcessorConfig.LoadFolder(Path.Combine(Folder, "processor"));
        var pixels = ClipRewardPixels.Torchvision(ImagesF32(io), processor.ShortestEdge, processor.CropSize, ResampleFilter.Bilinear, processor.Mean, processor.Std);
        output.WriteLine($"pixel_values: max abs error {MaxError(io["pixel_values"], pixels):g3} (vs the non-antialiased {MaxError(io["pixel_values_noaa"], pixels):g3})");
        TensorAssert.Close(io["pixel_values"], pixels, 1e-5, 0, "pixel_values");
        var ids = ClipRewardText.Ids(ClipTokenizer.FromFolder(Path.Combine(Folder, "processor")), PickScoreTests.Prompts(Folder), padToMaxLength: true);
        Assert.Equal(io["input_ids"].shape, ids.shape);
        Assert.Equal(io["input_ids"].data<long>().ToArray(), ids.data<long>().ToArray());

        using var model = ClipModel.FromPretrained(Path.Combine(Folder, "model"), ScalarType.Float32, CPU);
        Assert.Equal("quick_gelu", model.Config.Vision.HiddenAct);
        using var _ = no_grad();
        var img = model.GetImageFeatures(io["pixel_values"]);
        var txt = model.GetTextFeatures(io["input_ids"]);
        img = img / linalg.vector_norm(img, dims: [-1], keepdim: true);
        txt = txt / linalg.vector_norm(txt, dims: [-1], keepdim: true);
        var logits = model.LogitScaleExp() * img.matmul(txt.t());
        foreach (var (key, actual) in new[] { ("image_embeds", img), ("text_embeds", txt), ("logits_per_image", logits), ("scores", logits.diag() / 30) })
        {
            output.WriteLine($"{key}: max abs error {MaxError(io[key], actual):g3}");
            TensorAssert.Close(io[key], actual, Atol, 0, key);
        }
        TensorAssert.Close(io["logits_per_image_f64"], logits, Atol, 0, "logits_per_image_f64");
        output.WriteLine($"transformers float32 vs float64 logits: {MaxError(io["logits_per_image_f64"], io["logits_per_image"]):g3}");
    }

    [Fact]
    public void RewardAndGradientMatchFlowGrpo()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var prompts = PickScoreTests.Prompts(Folder);
        using var reward = Load();
        Assert.Equal(RewardNames.ClipScore, reward.Name);
        var images = ImagesF32(io);
        var result = reward.ScoreNow(new RewardBatch(images, prompts, [.. Enumerable.Repeat(new Dictionary<string, string>(), 3)]));
        output.WriteLine($"scores: {string.Join(", ", result.Rewards.Select(r => r.ToString("g6")))}; max abs error {MaxError(io["scores"], tensor(result.Rewards)):g3}");
        TensorAssert.Close(io["scores"], tensor(result.Rewards), Atol, 0, "scores");
        TensorAssert.Close(io["scores_f64"], tensor(result.Rewards), Atol, 0, "scores_f64");

        var leaf = images.clone().requires_grad_(true);
        var s = reward.ScoreDifferentiable(leaf, prompts);
        TensorAssert.Close(io["scores"], s, Atol, 0, "differentiable scores");
        s.sum().backward();
        var expected = io["grad_images_f32"];
        double gradScale = expected.abs().max().item<float>();
        Assert.True(gradScale > 1e-4, "the reference gradient is too small to test");
        output.WriteLine($"gradient: max abs error {MaxError(expected, leaf.grad!):g3} (largest |grad| {gradScale:g3})");
        // 1e-3 of the largest gradient: far below the effect of a wrong filter or crop offset.
        TensorAssert.Close(expected, leaf.grad!, 1e-3 * gradScale, 0, "grad_images_f32");
    }

    [Fact]
    public void ClipLargeOnMetaHasTheManifestKeys()
    {
        var manifest = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", "clip_vit_large_patch14.json")))!;
        var config = ClipModelConfig.FromJson(new JsonConfig((JsonObject)manifest["config"]!.DeepClone(), "clip_vit_large_patch14 manifest config"));
        Assert.Equal(("quick_gelu", 768), (config.Vision.HiddenAct, config.ProjectionDim));
        using var model = new ClipModel(config, new Device(DeviceType.META));
        RewardManifestAssert.KeysAndShapes(manifest, model.state_dict());
    }
}
