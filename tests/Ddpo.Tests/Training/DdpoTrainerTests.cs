using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

[Collection("training")]
public sealed class DdpoTrainerTests
{
    private static DdpoConfig TinyConfig(params string[] extra) => TinyTraining.Config(extra);

    private static List<EpochMetrics> Train(DdpoConfig config, string runDir, bool resume = false,
        IRewardFunction? reward = null, string? model = null) => TinyTraining.Train(config, runDir, resume, reward, model: model);

    /// <summary>
    /// sample.group_size = 4: each drawn prompt is sampled 4 times in a row (here across the two batches of 4),
    /// and with a one-group buffer the advantages are relative to the prompt's own images, so each group's
    /// advantages sum to zero.
    /// </summary>
    [Fact]
    public void GroupsSampleEachDrawnPromptSeveralTimes()
    {
        var dir = TestPaths.NewTempDir();
        var line = Assert.Single(Train(TinyConfig("num_epochs=1", "sample.num_batches_per_epoch=2", "sample.group_size=4",
            "per_prompt_stat_tracking.enabled=true", "per_prompt_stat_tracking.buffer_size=4", "per_prompt_stat_tracking.min_count=4"), dir));
        var counts = line.PromptRewards.Values.Select(v => v.Count).ToArray();
        Assert.Equal(8, counts.Sum());
        Assert.All(counts, n => Assert.Equal(0, n % 4));
        var bad = Assert.Throws<ConfigException>(() => TinyConfig("sample.group_size=3"));
        Assert.Contains("sample.group_size", bad.Message);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void FirstImportanceRatioOfAnEpochIsExactlyOne()
    {
        var dir = TestPaths.NewTempDir();
        var metrics = Train(TinyConfig("num_epochs=1"), dir);
        var line = Assert.Single(metrics);
        Assert.Equal(0.0, (double)line["first_ratio_max_dev"]!);
        Assert.Equal(0.0, (double)line["approx_kl"]!);
        foreach (var key in new[] { "epoch", "reward_mean", "reward_std", "approx_kl", "clipfrac", "loss", "samples", "sampling_s", "reward_s", "training_s" })
        {
            Assert.True(line.Values.ContainsKey(key), $"metrics.jsonl lacks '{key}'");
        }
        Assert.Equal(4.0, (double)line["samples"]!);
        Assert.True(File.Exists(Path.Combine(dir, "config.toml")));
        Assert.True(File.Exists(Path.Combine(dir, "lora.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir, "images", "epoch-0000", "grid.png")));
        Assert.True(File.Exists(Path.Combine(dir, "images", "epoch-0001", "grid.png")), "images after the last update");
        Directory.Delete(dir, true);
    }

    [Theory]
    [InlineData("ddpo", true, 1)]
    [InlineData("diffusers", true, 1)]
    [InlineData("ddpo", false, 0)]
    public void DeterministicLastStepsAreLeftOutOfTraining(string finalStep, bool setAlphaToOne, int stepsOffset)
    {
        // With set_alpha_to_one = true diffusers' last step has zero variance and no log-probability; training
        // with sample.final_step = "diffusers" must leave it out (a NaN log-prob would make the loss NaN). With
        // steps_offset = 0 the last timestep is 0 and even ddpo-pytorch's clamped step has zero variance.
        var model = TinyModels.PixelWithScheduler(c => c with { SetAlphaToOne = setAlphaToOne, StepsOffset = stepsOffset });
        var dir = TestPaths.NewTempDir();
        try
        {
            var line = Assert.Single(Train(TinyConfig("num_epochs=1", $"sample.final_step=\"{finalStep}\""), dir, model: model));
            Assert.Equal(0.0, (double)line["first_ratio_max_dev"]!);
            Assert.True(double.IsFinite((double)line["loss"]!), $"loss {line["loss"]}");
            Assert.True(double.IsFinite((double)line["approx_kl"]!), $"approx_kl {line["approx_kl"]}");
            Assert.Equal(1.0, (double)line["optimizer_steps"]!);
        }
        finally
        {
            Directory.Delete(dir, true);
            Directory.Delete(model, true);
        }
    }

    [Fact]
    public void DiffusersFinalStepWithOnlyADeterministicStepIsAClearError()
    {
        var model = TinyModels.PixelWithScheduler(c => c with { SetAlphaToOne = true });
        var dir = TestPaths.NewTempDir();
        try
        {
            var e = Assert.Throws<ConfigException>(() => Train(TinyConfig("num_epochs=1", "sample.num_steps=1", "sample.final_step=\"diffusers\""), dir, model: model));
            Assert.Contains("sample.final_step", e.Message);
            Assert.Contains("set_alpha_to_one", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
            Directory.Delete(model, true);
        }
    }

    [Fact]
    public void ResumingGivesTheSameMetricsAsAnUninterruptedRun()
    {
        var full = TestPaths.NewTempDir();
        var split = TestPaths.NewTempDir();
        var expected = Train(TinyConfig("num_epochs=3"), full);
        Train(TinyConfig("num_epochs=2"), split);
        // A run killed after its checkpoint of epoch 1 but before finishing epoch 2 may have left a line for epoch 2.
        File.AppendAllText(Path.Combine(split, "metrics.jsonl"), "{\"epoch\":2,\"reward_mean\":123}\n");
        var resumed = Train(TinyConfig("num_epochs=3"), split, resume: true);
        Assert.Equal(3, resumed.Count);
        for (int e = 0; e < 3; e++)
        {
            foreach (var key in new[] { "epoch", "reward_mean", "reward_std", "loss", "approx_kl", "clipfrac" })
            {
                Assert.Equal((double)expected[e][key]!, (double)resumed[e][key]!, 9);
            }
        }
        // The checkpoint counts the optimizer steps of all epochs, across the resume.
        static long StepsInCheckpoint(string run)
        {
            var (state, tensors) = Checkpoint.Latest(RunFolder.At(run))!.Load();
            foreach (var t in tensors.Values) t.Dispose();
            return state.GlobalStep;
        }
        Assert.Equal(expected.Sum(m => (double)m["optimizer_steps"]!), StepsInCheckpoint(full));
        Assert.Equal(StepsInCheckpoint(full), StepsInCheckpoint(split));
        Assert.Throws<ArgumentException>(() => Train(TinyConfig("num_epochs=3"), split));
        Directory.Delete(full, true);
        Directory.Delete(split, true);
    }

    [Fact]
    public void NonFiniteRewardsAreDroppedAndCounted()
    {
        var dir = TestPaths.NewTempDir();
        var metrics = Train(TinyConfig("num_epochs=1"), dir, reward: new BrokenReward());
        var line = Assert.Single(metrics);
        Assert.Equal(2.0, (double)line["nonfinite_rewards"]!);
        Assert.Equal(2.0, (double)line["samples_trained"]!);
        Assert.True(double.IsFinite((double)line["reward_mean"]!));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void WatchRewardsAreLoggedButNotOptimised()
    {
        var dir = TestPaths.NewTempDir();
        var line = Assert.Single(Train(TinyConfig("num_epochs=1", "watch_rewards=\"image_contrast, colorfulness\""), dir));
        Assert.InRange((double)line["watch_image_contrast_mean"]!, 0.0, 0.5);
        Assert.True((double)line["watch_colorfulness_mean"]! >= 0);
        Assert.True((double)line["reward_mean"]! < 0, "the optimised reward is still JPEG compressibility");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void AllAlgorithmsTrain()
    {
        foreach (var algorithm in new[] { "ddpo_sf", "rwr", "rwr_sparse" })
        {
            var dir = TestPaths.NewTempDir();
            var line = Assert.Single(Train(TinyConfig("num_epochs=1", $"algorithm=\"{algorithm}\""), dir));
            Assert.True(double.IsFinite((double)line["loss"]!), algorithm);
            Assert.True((double)line["optimizer_steps"]! >= 1, algorithm);
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void PpoLossGradientMatchesFiniteDifferencesOnATinyUnet()
    {
        // The whole DDPO-IS objective of one recorded step, differentiated through a tiny UNet, the
        // guidance and the DDIM log-density, in float64, against central differences.
        manual_seed(3);
        var config = TinyPipelineWriter.UnetConfig(new TinyPipelineOptions { WithVae = false, SampleSize = 8, UnetChannels = [8, 16], AttentionHeads = 2, TextHiddenSize = 8 });
        using var unet = new UNet2DConditionModel(config, ScalarType.Float64);
        using var scheduler = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        scheduler.SetTimesteps(5);
        var gen = new Generator(4);
        var x = randn(new long[] { 2, 3, 8, 8 }, dtype: ScalarType.Float64, generator: gen);
        var next = randn(new long[] { 2, 3, 8, 8 }, dtype: ScalarType.Float64, generator: gen) * 0.1 + x * 0.9;
        var embeds = randn(new long[] { 2, 5, 8 }, dtype: ScalarType.Float64, generator: gen);
        var negative = randn(new long[] { 2, 5, 8 }, dtype: ScalarType.Float64, generator: gen);
        var t = tensor(new long[] { 601, 601 });
        var advantages = tensor(new[] { 1.5, -0.7 }, dtype: ScalarType.Float64);
        Tensor oldLogProb;
        using (no_grad())
        {
            var eps0 = GuidedNoisePredictor.Predict(unet, x, t, embeds, negative, 4.0, ScalarType.Float64);
            oldLogProb = scheduler.Step(eps0, t, x, 1.0, prevSample: next).LogProb + 0.05; // ratio != 1, but inside no clip
        }
        Tensor Loss()
        {
            var eps = GuidedNoisePredictor.Predict(unet, x, t, embeds, negative, 4.0, ScalarType.Float64);
            var logProb = scheduler.Step(eps, t, x, 1.0, prevSample: next).LogProb;
            return PolicyLoss.DdpoIs(logProb, oldLogProb, advantages, clipRange: 10.0, advClipMax: 5.0).Loss;
        }
        var weight = unet.named_parameters().First(p => p.name.EndsWith("attn2.to_q.weight")).parameter;
        unet.zero_grad();
        Loss().backward();
        var analytic = weight.grad!.clone();
        const double h = 1e-6;
        foreach (var index in new long[] { 0, 5, 17 })
        {
            double original;
            using (no_grad())
            {
                var flat = weight.view(-1);
                original = flat[index].item<double>();
                flat[index] = original + h;
                double plus = Loss().item<double>();
                flat[index] = original - h;
                double minus = Loss().item<double>();
                flat[index] = original;
                double numeric = (plus - minus) / (2 * h);
                double a = analytic.view(-1)[index].item<double>();
                Assert.True(Math.Abs(a - numeric) <= 1e-6 + 1e-4 * Math.Abs(numeric), $"element {index}: autograd {a}, finite difference {numeric}");
            }
        }
        Assert.True(analytic.abs().max().item<double>() > 0, "the gradient must not vanish");
    }

    private sealed class BrokenReward : IRewardFunction
    {
        private readonly JpegCompressibilityReward _inner = new();
        public string Name => "broken";

        public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
        {
            var r = await _inner.ScoreAsync(batch, ct);
            var rewards = r.Rewards.ToArray();
            rewards[0] = float.NaN;
            rewards[^1] = float.PositiveInfinity;
            return new RewardResult(rewards);
        }
    }
}
