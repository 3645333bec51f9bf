using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Models.OpenClip;
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
/// The <c>hpsv2</c> reward against hpsv2's img_score.score on a tiny open_clip ViT (refenv/hpsv2: HPSv2's open_clip
/// fork at 866735e): preprocess_val pixels, open_clip ids, features, cosines, scores (list branch too), float64,
/// gradients through ResizeMaxSize/MaskAwareNormalize; and HPS_v2.1's real key set on the meta device.
/// </summary>
public sealed class Hpsv2Tests(ITestOutputHelper output)
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "hpsv2");
    private static readonly string ConfigPath = Path.Combine(Folder, "model", "HPSv2-tiny.json");
    private static readonly string WeightsPath = Path.Combine(Folder, "model", "open_clip_model.safetensors");
    private static readonly string MergesPath = Path.Combine(Folder, "tokenizer", "bpe_simple_vocab_tiny.txt.gz");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static double MaxError(Tensor expected, Tensor actual) =>
        (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64).cpu()).abs().max().item<double>();

    // Cosines and features are O(1); open_clip's float32 and float64 runs differ by ~1e-7 (printed): 1e-4 is the task's bound.
    private const double Atol = 1e-4;

    private static Tensor ImageF32(Tensor u8) => u8.permute(2, 0, 1).to(ScalarType.Float32) / 255;

    [Fact]
    public void PixelsIdsFeaturesAndCosinesMatchOpenClip()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        for (int i = 0; i < 3; i++)
        {
            var pixels = Hpsv2Pixels.Preprocess(ImageF32(io[$"image.{i}"]).unsqueeze(0), 20, ClipImagePreprocessor.ClipMean, ClipImagePreprocessor.ClipStd);
            output.WriteLine($"pixel_values[{i}]: max abs error {MaxError(io["pixel_values"][i], pixels[0]):g3}");
            TensorAssert.Close(io["pixel_values"][i], pixels[0], 1e-5, 0, $"pixel_values[{i}]");
        }
        var tokenizer = OpenClipTokenizer.FromMergesFile(MergesPath);
        Assert.Equal(734, tokenizer.VocabSize);
        var ids = tokenizer.Tokenize(PickScoreTests.Prompts(Folder));
        Assert.Equal(io["input_ids"].data<long>().ToArray(), ids.data<long>().ToArray());

        using var model = OpenClipModel.FromFiles(ConfigPath, WeightsPath, ScalarType.Float32, CPU);
        using var _ = no_grad();
        var img = model.EncodeImage(io["pixel_values"]);
        var txt = model.EncodeText(io["input_ids"]);
        var imgN = img / linalg.vector_norm(img, dims: [-1], keepdim: true);
        var txtN = txt / linalg.vector_norm(txt, dims: [-1], keepdim: true);
        var cos = imgN.matmul(txtN.t());
        foreach (var (key, actual) in new[] { ("image_features_raw", img), ("text_features_raw", txt), ("image_features", imgN), ("text_features", txtN),
                     ("logit_scale_exp", model.LogitScaleExp().reshape(1)), ("cos", cos), ("scores", cos.diag()), ("logits", model.LogitScaleExp() * cos) })
        {
            output.WriteLine($"{key}: max abs error {MaxError(io[key], actual):g3}");
            TensorAssert.Close(io[key], actual, Atol, 0, key);
        }
        TensorAssert.Close(io["cos_f64"], cos, Atol, 0, "cos_f64");
        output.WriteLine($"open_clip float32 vs float64 cos: {MaxError(io["cos_f64"], io["cos"]):g3}");

        using var model64 = OpenClipModel.FromFiles(ConfigPath, WeightsPath, ScalarType.Float64, CPU);
        var a = model64.EncodeImage(io["pixel_values"].to(ScalarType.Float64));
        var b = model64.EncodeText(io["input_ids"]);
        var cos64 = (a / linalg.vector_norm(a, dims: [-1], keepdim: true)).matmul((b / linalg.vector_norm(b, dims: [-1], keepdim: true)).t());
        output.WriteLine($"float64: max abs error {MaxError(io["cos_f64"], cos64):g3}");
        // float64 end to end: only summation order differs.
        TensorAssert.Close(io["cos_f64"], cos64, 1e-10, 0, "cos_f64 (float64 model)");
    }

    [Fact]
    public void RewardScoresAndGradientsMatchImgScore()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var prompts = PickScoreTests.Prompts(Folder);
        var (config, weights, merges) = Hpsv2Reward.FindFiles(Path.Combine(Folder, "model"), Path.Combine(Folder, "tokenizer"));
        Assert.Equal((ConfigPath, WeightsPath, MergesPath), (config, weights, merges));
        using var reward = Hpsv2Reward.Load(config, weights, merges);
        Assert.Equal(RewardNames.Hpsv2, reward.Name);
        double worstGrad = 0;
        for (int i = 0; i < 3; i++)
        {
            var x = ImageF32(io[$"image.{i}"]).unsqueeze(0);
            var result = reward.ScoreNow(new RewardBatch(x, [prompts[i]], [new Dictionary<string, string>()]));
            Assert.True(Math.Abs(result.Rewards[0] - io["scores"][i].item<float>()) <= Atol, $"score[{i}] = {result.Rewards[0]}, img_score {io["scores"][i].item<float>()}");
            // The list branch: every image against prompt 0.
            var s0 = reward.Score(x, [prompts[0]]);
            Assert.True(Math.Abs(s0[0] - io["scores_list_prompt0"][i].item<float>()) <= Atol, $"scores_list_prompt0[{i}]");

            var leaf = x.clone().requires_grad_(true);
            var s = reward.ScoreDifferentiable(leaf, [prompts[i]]);
            TensorAssert.Close(io["grad_path_scores"][i], s[0], Atol, 0, $"grad_path_scores[{i}]");
            s.sum().backward();
            var expected = io[$"grad_image.{i}"];
            double gradScale = expected.abs().max().item<float>();
            Assert.True(gradScale > 1e-5, "the reference gradient is too small to test");
            worstGrad = Math.Max(worstGrad, MaxError(expected, leaf.grad![0]) / gradScale);
            // 1e-3 of the largest gradient: far below the effect of a wrong filter, rounding or padding offset.
            TensorAssert.Close(expected, leaf.grad![0], 1e-3 * gradScale, 0, $"grad_image.{i}");
        }
        output.WriteLine($"gradients: max error / max |grad| = {worstGrad:g3}");
    }

    [Fact]
    public void LoadsTheNestedTorchCheckpointAsTheSafetensors()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var dir = TestPaths.NewTempDir("hpsv2-pt");
        try
        {
            // The layout of HPS_v2.1_compressed.pt: {'state_dict': OrderedDict(...)}, written without PyTorch.
            File.Copy(ConfigPath, Path.Combine(dir, "HPSv2-tiny.json"));
            var weights = SafetensorsFile.Load(WeightsPath);
            Support.TorchSaveWriter.Save(Path.Combine(dir, "HPS_tiny_compressed.pt"), weights, "state_dict");
            var (config, pt, merges) = Hpsv2Reward.FindFiles(dir, Path.Combine(Folder, "tokenizer"));
            Assert.EndsWith(".pt", pt);
            using var reward = Hpsv2Reward.Load(config, pt, merges);
            var prompts = PickScoreTests.Prompts(Folder);
            for (int i = 0; i < 3; i++)
            {
                var s = reward.Score(ImageF32(io[$"image.{i}"]).unsqueeze(0), [prompts[i]]);
                Assert.True(Math.Abs(s[0] - io["scores"][i].item<float>()) <= Atol, $"score[{i}] from the .pt = {s[0]}");
            }
            // A checkpoint missing a key fails strictly, naming the file and the key.
            weights.Remove("logit_scale");
            Support.TorchSaveWriter.Save(Path.Combine(dir, "HPS_tiny_compressed.pt"), weights, "state_dict");
            var e = Assert.Throws<ModelLoadException>(() => OpenClipModel.FromFiles(config, pt, ScalarType.Float32, CPU));
            Assert.Contains("logit_scale", e.Message);
            Assert.Contains(pt, e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ConfigIsReadStrictly()
    {
        var json = (JsonObject)JsonNode.Parse(File.ReadAllText(ConfigPath))!;
        ((JsonObject)json["vision_cfg"]!)["timm_model_name"] = "vit_base";
        var e = Assert.Throws<ConfigException>(() => OpenClipConfig.FromJson(new JsonConfig(json, "cfg.json")));
        Assert.Contains("timm_model_name", e.Message);
        json = (JsonObject)JsonNode.Parse(File.ReadAllText(ConfigPath))!;
        ((JsonObject)json["text_cfg"]!)["unknown_thing"] = 1;
        e = Assert.Throws<ConfigException>(() => OpenClipConfig.FromJson(new JsonConfig(json, "cfg.json")));
        Assert.Contains("unknown_thing", e.Message);
    }

    [Fact]
    public void RealConfigOnMetaHasTheManifestKeys()
    {
        var manifest = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", "hpsv2_vit_h_14_open_clip.json")))!;
        var config = OpenClipConfig.FromJson(new JsonConfig((JsonObject)manifest["config"]!.DeepClone(), "hpsv2 manifest config"));
        Assert.Equal((16, 80, 1024), (config.VisionHeads, config.VisionHeadWidth, config.EmbedDim));
        using var model = new OpenClipModel(config, new Device(DeviceType.META));
        RewardManifestAssert.KeysAndShapes(manifest, model.state_dict());
    }
}
