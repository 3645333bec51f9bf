using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Blip;
using Ddpo.Models.Loading;
using Ddpo.Rewards;
using Ddpo.Rewards.ImageReward;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>
/// ImageReward against THUDM/ImageReward's own code on the tiny random BLIP of <c>Fixtures/refenv/imagereward</c>
/// (made by /work/shared/refenv/make_imagereward.py): tokenizer, both preprocessing paths, every intermediate tensor, the
/// scores, ReFL's gradients; and the real ImageReward-v1.0 architecture on the meta device against its manifest.
/// </summary>
/// <remarks>
/// Tolerance 1e-4 (absolute) everywhere: the float32 reference scores differ from the float64 run (<c>scores_f64</c>) by
/// about 1e-6 (measured and checked below), so 1e-4 leaves two orders of magnitude for our different float32 summation
/// order while any real mistake (a missed LayerNorm eps, mask value, GELU form, crop offset) moves values by > 1e-3.
/// </remarks>
public sealed class ImageRewardTests(ITestOutputHelper output)
{
    private const double Tol = 1e-4;
    private static string Dir => TestPaths.Fixture("refenv", "imagereward");
    private static string ModelDir => Path.Combine(Dir, "model");
    private static string TokenizerDir => Path.Combine(Dir, "bert-base-uncased");

    /// <summary>The fixture's prompts (io.json), one per image.</summary>
    private static readonly string[] Prompts = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "io.json")))!["prompts"]!
        .AsArray().Select(p => p!.GetValue<string>()).ToArray();

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Dir, "io.safetensors"));

    /// <summary>image.{i} (HWC uint8) as [1, 3, H, W] uint8.</summary>
    private static Tensor Image(Dictionary<string, Tensor> io, int i) => io[$"image.{i}"].permute(2, 0, 1).unsqueeze(0);

    private double Report(string what, Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        double err = (expected.to(ScalarType.Float64) - actual.detach().cpu().to(ScalarType.Float64)).abs().max().item<double>();
        output.WriteLine($"{what}: max abs error {err:g3}");
        TensorAssert.Close(expected, actual.detach().cpu(), atol: Tol, rtol: 0, what: what);
        return err;
    }

    [Fact]
    public void TokenizerMatchesBlipTokenizer()
    {
        var io = Io();
        try
        {
            var tokenizer = ImageRewardTokenizer.FromFolder(TokenizerDir);
            var (ids, mask) = tokenizer.Encode(Prompts);
            Assert.Equal(io["input_ids"].data<long>().ToArray(), ids.data<long>().ToArray());
            Assert.Equal(io["attention_mask"].data<long>().ToArray(), mask.data<long>().ToArray());
            // Truncation keeps [CLS] and [SEP] within max_length.
            var (longIds, longMask) = tokenizer.Encode([string.Join(" ", Enumerable.Repeat("cat", 50))]);
            Assert.Equal(35, longIds.shape[1]);
            Assert.Equal(35, longMask.sum().item<long>());
            Assert.Equal(io["input_ids"][0, 0].item<long>(), longIds[0, 0].item<long>());
        }
        finally
        {
            StateDictLoader.DisposeAll(io);
        }
    }

    [Fact]
    public void PilPathMatchesTorchvisionOnPil()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        try
        {
            var pre = new ImageRewardPreprocessor(32);
            // 30x44 -> 32x46 (left 7), 41x27 -> 48x32 (top 8), 17x25 -> 32x47 (left round(7.5) = 8, half to even).
            Assert.Equal((32, 47), pre.ResizedSize(17, 25));
            Assert.Equal(8, pre.CropOffset(47));
            for (int i = 0; i < 3; i++)
            {
                var pixels = pre.PreprocessPil(Image(io, i));
                // Pillow's resampler is integer arithmetic, so this is exact up to the float32 normalisation.
                TensorAssert.Close(io["pixel_values"][i].unsqueeze(0), pixels, atol: 1e-6, rtol: 0, what: $"pixel_values[{i}]");
                // The float [0, 1] input (a RewardBatch) is quantised back to the same bytes.
                var asFloat = Image(io, i).to(ScalarType.Float32) / 255;
                Assert.Equal(pixels.data<float>().ToArray(), pre.PreprocessPil(asFloat).data<float>().ToArray());
            }
        }
        finally
        {
            StateDictLoader.DisposeAll(io);
        }
    }

    [Fact]
    public void EncodersHeadAndScoresMatchImageReward()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        try
        {
            using var model = ImageRewardModel.FromPretrained(ModelDir);
            Assert.Equal(24, model.Config.Vision.Width);
            Assert.Equal(213, model.Config.Text.VocabSize);
            using var _ = no_grad();
            var pixels = io["pixel_values"];
            var image = model.EncodeImage(pixels);
            Report("image_embeds", io["image_embeds"], image);
            // From the reference image tokens, so that the text encoder is checked on its own.
            var text = model.EncodeText(io["input_ids"], io["attention_mask"], io["image_embeds"]);
            Report("text_last_hidden_state", io["text_last_hidden_state"], text);
            Report("mlp_out", io["mlp_out"], model.Head(io["txt_features"]));
            var scores = model.Score(pixels, io["input_ids"], io["attention_mask"]);
            double err = Report("scores", io["scores"], scores);
            double refErr = (io["scores"].to(ScalarType.Float64) - io["scores_f64"]).abs().max().item<double>();
            double ourErr = (scores.to(ScalarType.Float64) - io["scores_f64"]).abs().max().item<double>();
            output.WriteLine($"float32 reference vs float64: {refErr:g3}; ours vs float64: {ourErr:g3}; ours vs reference {err:g3}");
            Assert.True(refErr < Tol / 10, $"the tolerance assumes float32 error well under {Tol}, the reference has {refErr:g3}");
            Assert.True(ourErr < Tol, $"ours vs float64: {ourErr:g3}");
            // Flow-GRPO's scorer and inference_rank give the same per-pair scores.
            Report("scores_flowgrpo", io["scores_flowgrpo"], scores);
        }
        finally
        {
            StateDictLoader.DisposeAll(io);
        }
    }

    [Fact]
    public void RewardScoresLikeFlowGrpoAndRanksLikeInferenceRank()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        try
        {
            using var reward = new ImageRewardReward(ImageRewardScorer.Load(ModelDir, TokenizerDir));
            Assert.Equal(RewardNames.ImageReward, reward.Name);
            var got = new float[3];
            var matrix = new float[3, 3];
            for (int i = 0; i < 3; i++)
            {
                // A RewardBatch holds one image size, so each image is its own batch; all three prompts against it
                // is inference_rank(prompts, image_i) (DiffusionNFT's batched call).
                var images = Image(io, i).to(ScalarType.Float32) / 255;
                var result = reward.ScoreNow(new RewardBatch(images, [Prompts[i]], [new Dictionary<string, string>()]));
                got[i] = result.Rewards[0];
                var all = reward.ScoreNow(new RewardBatch(images.expand(3, -1, -1, -1), Prompts,
                    Enumerable.Range(0, 3).Select(_ => (IReadOnlyDictionary<string, string>)new Dictionary<string, string>()).ToList()));
                for (int p = 0; p < 3; p++) matrix[i, p] = all.Rewards[p];
            }
            Report("ScoreAsync", io["scores"], tensor(got));
            var m = new float[9];
            Buffer.BlockCopy(matrix, 0, m, 0, 9 * sizeof(float));
            Report("rewards_matrix", io["rewards_matrix"], tensor(m, [3, 3]));
            // inference_rank(prompts[0], images): column 0; its ranking (1 = best).
            var column = Enumerable.Range(0, 3).Select(i => matrix[i, 0]).ToArray();
            Report("prompt0_rewards", io["prompt0_rewards"], tensor(column));
            var ranking = column.Select(v => 1L + column.Count(o => o > v)).ToArray();
            Assert.Equal(io["prompt0_ranking"].data<long>().ToArray(), ranking);
        }
        finally
        {
            StateDictLoader.DisposeAll(io);
        }
    }

    [Fact]
    public void DifferentiablePathMatchesReflScoresAndGradients()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        try
        {
            using var reward = new ImageRewardReward(ImageRewardScorer.Load(ModelDir, TokenizerDir));
            var pre = new ImageRewardPreprocessor(ImageRewardModel.LoadConfig(ModelDir).Vision.ImageSize);
            var scores = new float[3];
            for (int i = 0; i < 3; i++)
            {
                // image_f32.{i} = image.{i}.permute(2, 0, 1).float() / 255.
                var x = (Image(io, i).to(ScalarType.Float32) / 255).requires_grad_(true);
                using (no_grad())
                {
                    Report($"refl_pixel_values.{i}", io[$"refl_pixel_values.{i}"].unsqueeze(0), pre.PreprocessTensor(x));
                }
                var s = reward.ScoreDifferentiable(x, [Prompts[i]]);
                Assert.True(s.requires_grad);
                s.sum().backward();
                scores[i] = s.item<float>();
                Report($"grad_image.{i}", io[$"grad_image.{i}"], x.grad!.squeeze(0));
                double gradMax = io[$"grad_image.{i}"].abs().max().item<float>();
                output.WriteLine($"grad_image.{i}: reference max |grad| {gradMax:g3}");
            }
            Report("refl_scores", io["refl_scores"], tensor(scores));
        }
        finally
        {
            StateDictLoader.DisposeAll(io);
        }
    }

    [Fact]
    public void RealArchitectureOnMetaMatchesManifest()
    {
        var manifest = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", "imagereward.json")))!;
        using var model = new ImageRewardModel(ImageRewardConfig.V1, new Device(DeviceType.META));
        var expected = ((JsonObject)manifest["keys"]!).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(d => d!.GetValue<long>()).ToArray());
        var actual = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(manifest["n_state_dict_keys"]!.GetValue<int>(), actual.Count);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(actual[key]), $"{key}: manifest [{string.Join(", ", shape)}], model [{string.Join(", ", actual[key])}]");
        Assert.Equal(manifest["n_parameters"]!.GetValue<long>(), model.parameters().Sum(p => p.numel()));
        Assert.Equal(manifest["n_state_dict_elements"]!.GetValue<long>(), model.state_dict().Values.Sum(t => t.numel()));
    }

    [Fact]
    public void LoadingIsStrictAndConfigErrorsNameFileAndKey()
    {
        var dir = TestPaths.NewTempDir("imagereward-strict");
        try
        {
            foreach (var f in new[] { "config.json", "med_config.json" }) File.Copy(Path.Combine(ModelDir, f), Path.Combine(dir, f));
            var weights = SafetensorsFile.Load(Path.Combine(ModelDir, "model.safetensors"));
            // Without the position_ids buffer: accepted (it is arange).
            weights.Remove("blip.text_encoder.embeddings.position_ids", out var positions);
            positions!.Dispose();
            SafetensorsFile.SaveAtomic(Path.Combine(dir, "model.safetensors"), weights);
            using (var model = ImageRewardModel.FromPretrained(Path.Combine(dir, "model.safetensors"))) Assert.Equal(2, model.Config.Text.NumHiddenLayers);

            // A missing weight and an unexpected one are named.
            weights.Remove("mlp.layers.7.bias", out var bias);
            bias!.Dispose();
            weights["blip.itm_head.weight"] = zeros(2, 16);
            SafetensorsFile.SaveAtomic(Path.Combine(dir, "model.safetensors"), weights);
            StateDictLoader.DisposeAll(weights);
            var load = Assert.Throws<ModelLoadException>(() => ImageRewardModel.FromPretrained(dir));
            Assert.Contains("mlp.layers.7.bias", load.Message);
            Assert.Contains("blip.itm_head.weight", load.Message);
            Assert.Contains("model.safetensors", load.Message);

            // Unknown and wrong-typed config fields.
            var med = Path.Combine(dir, "med_config.json");
            var medJson = JsonNode.Parse(File.ReadAllText(med))!.AsObject();
            medJson["position_embedding_type"] = "relative_key";
            File.WriteAllText(med, medJson.ToJsonString());
            var unknown = Assert.Throws<ConfigException>(() => ImageRewardModel.FromPretrained(dir));
            Assert.Contains("med_config.json", unknown.Message);
            Assert.Contains("position_embedding_type", unknown.Message);
            medJson.Remove("position_embedding_type");
            medJson["hidden_size"] = "16";
            File.WriteAllText(med, medJson.ToJsonString());
            var typed = Assert.Throws<ConfigException>(() => ImageRewardModel.FromPretrained(dir));
            Assert.Contains("'hidden_size'", typed.Message);

            var cfg = Path.Combine(dir, "config.json");
            var cfgJson = JsonNode.Parse(File.ReadAllText(cfg))!.AsObject();
            cfgJson["vit"]!["use_grad_checkpointing"] = true;
            File.WriteAllText(cfg, cfgJson.ToJsonString());
            var vit = Assert.Throws<ConfigException>(() => ImageRewardModel.FromPretrained(dir));
            Assert.Contains("config.json", vit.Message);
            Assert.Contains("vit.use_grad_checkpointing", vit.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void LoadsImageRewardPtThroughTheRestrictedUnpickler()
    {
        using var scope = NewDisposeScope();
        var dir = TestPaths.NewTempDir("imagereward-pt");
        var io = Io();
        try
        {
            // The upstream layout: ImageReward.pt and med_config.json (here with the tiny config.json too).
            foreach (var f in new[] { "config.json", "med_config.json" }) File.Copy(Path.Combine(ModelDir, f), Path.Combine(dir, f));
            var weights = SafetensorsFile.Load(Path.Combine(ModelDir, "model.safetensors"));
            TorchSaveWriter.Save(Path.Combine(dir, "ImageReward.pt"), weights);
            StateDictLoader.DisposeAll(weights);
            foreach (var path in new[] { dir, Path.Combine(dir, "ImageReward.pt") })
            {
                using var model = ImageRewardModel.FromPretrained(path);
                using var _ = no_grad();
                Report("scores from ImageReward.pt", io["scores"], model.Score(io["pixel_values"], io["input_ids"], io["attention_mask"]));
            }
        }
        finally
        {
            StateDictLoader.DisposeAll(io);
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void FactoryBuildsTheRewardAndNamesMissingSettings()
    {
        var registry = RewardFactory.CreateRegistry(DdpoConfig.Load(null, null, null));
        Assert.True(registry.Contains(RewardNames.ImageReward));
        var missing = Assert.Throws<ConfigException>(() => registry.Create(RewardNames.ImageReward));
        Assert.Contains("reward.imagereward.model", missing.Message);

        var noVocab = RewardFactory.CreateRegistry(DdpoConfig.Load(null, null, [$"reward.imagereward.model={ModelDir}"]));
        var tokenizer = Assert.Throws<ConfigException>(() => noVocab.Create(RewardNames.ImageReward));
        Assert.Contains("reward.imagereward.processor", tokenizer.Message);

        var config = DdpoConfig.Load(null, null, [$"reward.imagereward.model={ModelDir}", $"reward.imagereward.processor={TokenizerDir}", "reward.imagereward.batch_size=2"]);
        var reward = RewardFactory.CreateRegistry(config).Create(RewardNames.ImageReward);
        using var _ = reward as IDisposable;
        Assert.IsAssignableFrom<IDifferentiableReward>(reward);
        Assert.Contains("[reward.imagereward]", config.ToToml());
    }
}
