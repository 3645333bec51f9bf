using System.Text.Json.Nodes;
using Ddpo.Base;
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
/// The <c>pickscore</c> reward against Flow-GRPO's PickScoreScorer and imscore's PickScorer (refenv/pickscore: a tiny
/// random CLIPModel, transformers 4.45.2, Pillow 9.4): processor pixels, ids, features, logits, scores, the
/// differentiable path's pixels and gradients; and PickScore_v1's real key set on the meta device.
/// </summary>
public sealed class PickScoreTests(ITestOutputHelper output)
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "pickscore");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    internal static string[] Prompts(string folder) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "io.json")))!["prompts"]!.AsArray().Select(p => p!.GetValue<string>()).ToArray();

    private static double MaxError(Tensor expected, Tensor actual) =>
        (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64).cpu()).abs().max().item<double>();

    // Everything is O(1) (scores O(10) before / 26); transformers' float32 run differs from its float64 run by ~1e-6
    // (printed), so 1e-4 (the task's bound) leaves room for summation order and fails on any real difference.
    private const double Atol = 1e-4;

    private static Tensor ImageF32(Tensor u8) => u8.permute(2, 0, 1).to(ScalarType.Float32) / 255;

    [Fact]
    public void ProcessorPixelsAndIdsMatchTransformers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var processor = ClipImageProcessorConfig.LoadFolder(Path.Combine(Folder, "processor"));
        Assert.Equal((20, 20, Ddpo.Imaging.Resampling.ResampleFilter.Bicubic), (processor.ShortestEdge, processor.CropSize, processor.Resample));
        for (int i = 0; i < 3; i++)
        {
            var im = io[$"image.{i}"];
            var pixels = ClipRewardPixels.Processor(im.contiguous().data<byte>().ToArray(), 1, (int)im.shape[0], (int)im.shape[1], processor);
            double err = MaxError(io["pixel_values"][i], pixels[0]);
            output.WriteLine($"pixel_values[{i}] ({im.shape[0]}x{im.shape[1]}): max abs error {err:g3}");
            // Same bytes from PIL's resize, same float64 rescale and float32 normalisation: identical.
            Assert.Equal(0.0, err);
        }
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(Folder, "processor"));
        var ids = ClipRewardText.Ids(tokenizer, Prompts(Folder), padToMaxLength: false);
        Assert.Equal(io["input_ids"].shape, ids.shape);
        Assert.Equal(io["input_ids"].data<long>().ToArray(), ids.data<long>().ToArray());
    }

    [Fact]
    public void FeaturesLogitsAndScoresMatchFlowGrpo()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var model = ClipModel.FromPretrained(Path.Combine(Folder, "model"), ScalarType.Float32, CPU);
        Assert.Equal("gelu", model.Config.Vision.HiddenAct);
        using var _ = no_grad();
        var img = model.GetImageFeatures(io["pixel_values"]);
        var txt = model.GetTextFeatures(io["input_ids"]);
        var imgN = img / linalg.vector_norm(img, dims: [-1], keepdim: true);
        var txtN = txt / linalg.vector_norm(txt, dims: [-1], keepdim: true);
        var scale = model.LogitScaleExp();
        var logits = scale * txtN.matmul(imgN.t());
        foreach (var (key, actual) in new[] { ("image_embeds_raw", img), ("text_embeds_raw", txt), ("image_embeds", imgN), ("text_embeds", txtN),
                     ("logit_scale_exp", scale.reshape(1)), ("logits", logits), ("scores_raw", logits.diag()), ("scores", logits.diag() / 26) })
        {
            output.WriteLine($"{key}: max abs error {MaxError(io[key], actual):g3}");
            TensorAssert.Close(io[key], actual, Atol, 0, key);
        }
        output.WriteLine($"transformers float32 vs float64 scores: {MaxError(io["scores_f64"], io["scores"]):g3}; ours vs float64 {MaxError(io["scores_f64"], logits.diag() / 26):g3}");
        TensorAssert.Close(io["scores_f64"], logits.diag() / 26, Atol, 0, "scores_f64");
        TensorAssert.Close(io["image_embeds_f64"], imgN, Atol, 0, "image_embeds_f64");
        TensorAssert.Close(io["text_embeds_f64"], txtN, Atol, 0, "text_embeds_f64");
    }

    [Fact]
    public void RewardScoresEachImageLikeFlowGrpo()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var prompts = Prompts(Folder);
        using var reward = ClipModelReward.LoadPickScore(Path.Combine(Folder, "model"), Path.Combine(Folder, "processor"), batchSize: 2);
        Assert.Equal(RewardNames.PickScore, reward.Name);
        // Different sizes: one image per batch, as a run would never mix sizes.
        for (int i = 0; i < 3; i++)
        {
            var images = ImageF32(io[$"image.{i}"]).unsqueeze(0);
            var result = reward.ScoreNow(new RewardBatch(images, [prompts[i]], [new Dictionary<string, string>()]));
            double err = Math.Abs(result.Rewards[0] - io["scores"][i].item<float>());
            output.WriteLine($"score[{i}] = {result.Rewards[0]:g6} (Flow-GRPO {io["scores"][i].item<float>():g6}, error {err:g3})");
            Assert.True(err <= Atol, $"score[{i}] off by {err}");
        }
        // A batch larger than batch_size is split and keeps its order: the same image three times against the three prompts.
        var same = ImageF32(io["image.0"]).unsqueeze(0).expand(3, -1, -1, -1);
        var batched = reward.ScoreNow(new RewardBatch(same, prompts, [.. Enumerable.Repeat(new Dictionary<string, string>(), 3)]));
        var expected = io["logits"][TensorIndex.Colon, 0] / 26;
        TensorAssert.Close(expected, tensor(batched.Rewards), Atol, 0, "logits[:, 0] / 26");
    }

    [Fact]
    public void DifferentiablePathMatchesImscoreGradients()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var prompts = Prompts(Folder);
        using var reward = ClipModelReward.LoadPickScore(Path.Combine(Folder, "model"), Path.Combine(Folder, "processor"));
        var processor = ClipImageProcessorConfig.LoadFolder(Path.Combine(Folder, "processor"));
        double worstPixels = 0, worstGrad = 0, worstScore = 0;
        for (int i = 0; i < 3; i++)
        {
            var x = ImageF32(io[$"image.{i}"]).unsqueeze(0);
            var pixels = ClipRewardPixels.Torchvision(x, 20, 20, Ddpo.Imaging.Resampling.ResampleFilter.Bicubic, processor.Mean, processor.Std);
            worstPixels = Math.Max(worstPixels, MaxError(io[$"tv_pixel_values.{i}"], pixels[0]));
            TensorAssert.Close(io[$"tv_pixel_values.{i}"], pixels[0], 1e-5, 0, $"tv_pixel_values.{i}");
            var leaf = x.clone().requires_grad_(true);
            var s = reward.ScoreDifferentiable(leaf, [prompts[i]]);
            Assert.True(s.requires_grad);
            worstScore = Math.Max(worstScore, Math.Abs(s.item<float>() - io["imscore_scores"][i].item<float>() / 26));
            TensorAssert.Close(io["imscore_scores"][i] / 26, s[0], Atol, 0, $"imscore_scores[{i}] / 26");
            s.sum().backward();
            var expectedGrad = io[$"grad_image.{i}"] / 26;
            worstGrad = Math.Max(worstGrad, MaxError(expectedGrad, leaf.grad![0]));
            // Gradients are O(1e-2); 1e-3 of the largest one is ~100x the measured error and far below a wrong tap's.
            double gradScale = expectedGrad.abs().max().item<float>();
            Assert.True(gradScale > 1e-4, "the reference gradient is too small to test");
            TensorAssert.Close(expectedGrad, leaf.grad![0], 1e-3 * gradScale, 0, $"grad_image.{i} / 26");
        }
        output.WriteLine($"tensor path: pixels {worstPixels:g3}, scores {worstScore:g3}, gradients {worstGrad:g3}");
    }

    [Fact]
    public void ConfigsAreReadStrictly()
    {
        JsonObject Processor() => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "processor", ClipImageProcessorConfig.FileName)))!;
        ConfigException Fails(JsonObject json) => Assert.Throws<ConfigException>(() => ClipImageProcessorConfig.FromJson(new JsonConfig(json, "pp.json")));
        var p = Processor();
        p["resample"] = 1;
        Assert.Contains("'resample' = 1", Fails(p).Message);
        p = Processor();
        p["crop_size"] = new JsonObject { ["height"] = 24, ["width"] = 24 };
        Assert.Contains("'crop_size'", Fails(p).Message);
        p = Processor();
        p["image_mean"] = new JsonArray(0.5, 0.5);
        Assert.Contains("'image_mean'", Fails(p).Message);
        p = Processor();
        p["do_center_crop"] = false;
        Assert.Contains("'do_center_crop'", Fails(p).Message);
        var model = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "model", "config.json")))!;
        model.Remove("vision_config");
        var e = Assert.Throws<ConfigException>(() => ClipModelConfig.FromJson(new JsonConfig(model, "config.json")));
        Assert.Contains("'vision_config'", e.Message);
        // A weight file missing a key is an error naming the file and the key.
        var dir = TestPaths.NewTempDir("pickscore-missing");
        try
        {
            File.Copy(Path.Combine(Folder, "model", "config.json"), Path.Combine(dir, "config.json"));
            var weights = SafetensorsFile.Load(Path.Combine(Folder, "model", "model.safetensors"));
            weights.Remove("logit_scale");
            SafetensorsFile.SaveAtomic(Path.Combine(dir, "model.safetensors"), weights);
            var missing = Assert.Throws<ModelLoadException>(() => ClipModel.FromPretrained(dir, ScalarType.Float32, CPU));
            Assert.Contains("logit_scale", missing.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void RealConfigOnMetaHasTheManifestKeys()
    {
        var manifest = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", "pickscore_v1_clip_vit_h_14.json")))!;
        var config = ClipModelConfig.FromJson(new JsonConfig((JsonObject)manifest["config"]!.DeepClone(), "pickscore manifest config"));
        Assert.Equal(("gelu", "gelu", 1024), (config.Text.HiddenAct, config.Vision.HiddenAct, config.ProjectionDim));
        using var model = new ClipModel(config, new Device(DeviceType.META));
        RewardManifestAssert.KeysAndShapes(manifest, model.state_dict());
    }
}
