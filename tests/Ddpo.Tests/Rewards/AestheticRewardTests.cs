using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Rewards;
using Ddpo.Rewards.Aesthetic;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>The LAION aesthetic predictor: head parity with the reference, and the CLIP pipeline on the tiny tower.</summary>
public sealed class AestheticRewardTests
{
    private static string TinyClip => TestPaths.Fixture("clip_vision_tiny");

    [SkippableFact]
    public void RealHeadMatchesReferenceScores()
    {
        Skip.If(TestPaths.Shared is null, "needs ../shared/fixtures (the LAION aesthetic head is third-party data, not committed)");
        var shared = TestPaths.Shared!;
        using var head = AestheticHead.Load(Path.Combine(shared, "aesthetic_head.safetensors"));
        Assert.Equal([768, 1024, 128, 64, 16, 1], head.Widths);
        var io = SafetensorsFile.Load(Path.Combine(shared, "aesthetic_io.safetensors"));
        try
        {
            using var scope = NewDisposeScope();
            var embeds = io["embeds"];
            var normalised = embeds / linalg.vector_norm(embeds, dims: [-1], keepdim: true);
            TensorAssert.Close(io["scores"], head.Forward(normalised), what: "aesthetic scores");
        }
        finally
        {
            StateDictLoader.DisposeAll(io);
        }
    }

    /// <summary>A random head for the tiny CLIP (16-wide embeddings), saved as safetensors.</summary>
    private static string RandomHead(string dir)
    {
        var g = new Generator(7);
        int[] widths = [16, 24, 12, 8, 4, 1];
        var tensors = new Dictionary<string, Tensor>();
        for (int k = 0; k < 5; k++)
        {
            int index = AestheticHead.LinearIndices[k];
            tensors[$"layers.{index}.weight"] = randn([widths[k + 1], widths[k]], generator: g) * 0.3;
            tensors[$"layers.{index}.bias"] = randn([widths[k + 1]], generator: g) * 0.1;
        }
        var path = Path.Combine(dir, "head.safetensors");
        SafetensorsFile.SaveAtomic(path, tensors);
        StateDictLoader.DisposeAll(tensors);
        return path;
    }

    [Fact]
    public void PipelineMatchesDirectComputation()
    {
        var dir = TestPaths.NewTempDir("aesthetic");
        try
        {
            var headPath = RandomHead(dir);
            using var reward = new AestheticReward(AestheticScorer.Load(TinyClip, headPath, batchSize: 2));
            using var scope = NewDisposeScope();
            var images = rand([3, 3, 40, 36], generator: new Generator(11));
            var result = reward.ScoreNow(new RewardBatch(images, ["a", "b", "c"], Enumerable.Repeat(Ddpo.Prompts.PromptSample.NoMetadata, 3).ToArray()));

            // Direct: 8-bit quantisation, CLIP preprocessing at 30 px, embeddings, L2 norm, then the five affine maps from the file.
            using var clip = ClipVisionModelWithProjection.FromPretrained(TinyClip);
            var pixels = new ClipImagePreprocessor(30, 30).Preprocess((images * 255).round() / 255);
            var x = clip.GetImageEmbeds(pixels);
            x = x / x.norm(1, keepdim: true);
            var w = SafetensorsFile.Load(headPath);
            foreach (var i in AestheticHead.LinearIndices) x = x.matmul(w[$"layers.{i}.weight"].t()) + w[$"layers.{i}.bias"];
            TensorAssert.Close(x.squeeze(1), tensor(result.Rewards), what: "aesthetic rewards");
            StateDictLoader.DisposeAll(w);
            Assert.Equal(RewardNames.AestheticScore, reward.Name);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void DifferentiableScoresEqualTheRewardOnEightBitImagesAndTheirGradientRaisesTheScore()
    {
        var dir = TestPaths.NewTempDir("aesthetic");
        try
        {
            using var reward = new AestheticReward(AestheticScorer.Load(TinyClip, RandomHead(dir), batchSize: 2));
            using var scope = NewDisposeScope();
            // 8-bit images: the reward's quantisation changes nothing, so both paths see the same pixels.
            var images = (rand([3, 3, 40, 36], generator: new Generator(12)) * 255).round() / 255;
            var result = reward.ScoreNow(new RewardBatch(images, ["a", "b", "c"], Enumerable.Repeat(Ddpo.Prompts.PromptSample.NoMetadata, 3).ToArray()));
            var x = images.clone().requires_grad_(true);
            var scores = reward.ScoreDifferentiable(x, ["a", "b", "c"]);
            TensorAssert.Close(scores.detach(), tensor(result.Rewards), atol: 1e-5, rtol: 1e-5, what: "differentiable vs reward");
            scores.sum().backward();
            var g = x.grad!;
            Assert.True(g.abs().max().item<float>() > 0 && g.isfinite().all().item<bool>(), "the gradient reaches the pixels");
            // First order: a small step along each image's gradient raises its score.
            using (no_grad())
            {
                var step = 1e-3 * g / g.flatten(1).norm(1).view(-1, 1, 1, 1);
                var after = reward.ScoreDifferentiable(x + step, ["a", "b", "c"]);
                Assert.True((after > scores.detach()).all().item<bool>(), $"scores {scores} -> {after}");
            }
            Assert.IsAssignableFrom<IDifferentiableReward>(reward);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// The head as LAION publishes it (a torch.save'd state dict, here a tiny random one made by
    /// Fixtures/torch_pickle/make_aesthetic_head.py with PyTorch 1.13) loads through the restricted unpickler and scores
    /// as PyTorch does; a missing file is named.
    /// </summary>
    [Fact]
    public void PytorchHeadFilesLoadWithoutUnpicklingCode()
    {
        var folder = TestPaths.Fixture("torch_pickle");
        var expected = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "aesthetic_head.expected.json")))!;
        using var head = AestheticHead.Load(Path.Combine(folder, "aesthetic_head.pth"));
        Assert.Equal(8, head.InputDim);
        var inputs = expected["inputs"]!.AsArray().Select(r => r!.AsArray().Select(v => v!.GetValue<float>()).ToArray()).ToArray();
        using var x = TorchSharp.torch.tensor(inputs.SelectMany(r => r).ToArray(), [inputs.Length, 8]);
        using var scores = head.Forward(x);
        var want = expected["scores"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        var got = scores.data<float>().ToArray();
        for (int i = 0; i < want.Length; i++) Assert.Equal(want[i], got[i], 5);
        var e = Assert.Throws<ModelLoadException>(() => AestheticHead.Load("/models/sac+logos+ava1-l14-linearMSE.pth"));
        Assert.Contains("sac+logos+ava1-l14-linearMSE.pth", e.Message);
    }

    [Fact]
    public void HeadOfTheWrongWidthIsReported()
    {
        var dir = TestPaths.NewTempDir("aesthetic-width");
        try
        {
            var tensors = new Dictionary<string, Tensor>();
            int[] widths = [768, 8, 8, 8, 8, 1];
            for (int k = 0; k < 5; k++)
            {
                tensors[$"layers.{AestheticHead.LinearIndices[k]}.weight"] = zeros(widths[k + 1], widths[k]);
                tensors[$"layers.{AestheticHead.LinearIndices[k]}.bias"] = zeros(widths[k + 1]);
            }
            var path = Path.Combine(dir, "head.safetensors");
            SafetensorsFile.SaveAtomic(path, tensors);
            var e = Assert.Throws<ArgumentException>(() => AestheticScorer.Load(TinyClip, path));
            Assert.Contains("768", e.Message);
            Assert.Contains("16", e.Message);

            tensors.Remove("layers.7.weight");
            SafetensorsFile.SaveAtomic(path, tensors);
            var missing = Assert.Throws<ModelLoadException>(() => AestheticHead.Load(path));
            Assert.Contains("layers.7.weight", missing.Message);
            StateDictLoader.DisposeAll(tensors);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task RegistryBuildsItFromConfig()
    {
        var dir = TestPaths.NewTempDir("aesthetic-registry");
        try
        {
            var headPath = RandomHead(dir);
            var missing = DdpoConfig.Load(null, "aesthetic", ["device=cpu"]);
            var e = Assert.Throws<ConfigException>(() => RewardFactory.CreateRegistry(missing).Create(missing.RewardFn));
            Assert.Contains("reward.aesthetic.clip_model", e.Message);

            var config = DdpoConfig.Load(null, "aesthetic", ["device=cpu", $"reward.aesthetic.clip_model={TinyClip}", $"reward.aesthetic.head={headPath}"]);
            var reward = RewardFactory.CreateRegistry(config).Create(config.RewardFn, config.Rewards);
            using var _ = reward as IDisposable;
            Assert.IsType<AestheticReward>(reward);
            using var images = rand(2, 3, 30, 30);
            var result = await reward.ScoreAsync(new RewardBatch(images, ["x", "y"], Enumerable.Repeat(Ddpo.Prompts.PromptSample.NoMetadata, 2).ToArray()), CancellationToken.None);
            Assert.All(result.Rewards, r => Assert.True(float.IsFinite(r)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
