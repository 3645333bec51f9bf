using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

/// <summary>GRPO, the KL penalty and the SDE window, end to end on the tiny pixel pipeline.</summary>
[Collection("training")]
public sealed class GrpoTrainingTests
{
    private static DdpoConfig TinyConfig(params string[] extra) => TinyTraining.Config(extra);

    private static List<EpochMetrics> Train(DdpoConfig config, string runDir, bool resume = false,
        IRewardFunction? reward = null, ITrainingObserver? observer = null) => TinyTraining.Train(config, runDir, resume, reward, observer);

    [Fact]
    public void GrpoTrainsOnGroupsAndCountsGroupsWithoutSignal()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            var line = Assert.Single(Train(TinyConfig("num_epochs=1", "algorithm=grpo", "sample.group_size=2"), dir));
            Assert.Equal(2.0, (double)line["groups"]!);
            Assert.Equal(0.0, (double)line["zero_std_groups"]!); // JPEG sizes of different images differ
            Assert.Equal(0.0, (double)line["first_ratio_max_dev"]!);
            Assert.True((double)line["loss"]! != 0 && double.IsFinite((double)line["loss"]!), $"loss {line["loss"]}");
            Assert.Equal(1.0, (double)line["optimizer_steps"]!);
            Assert.False(line.Values.ContainsKey("kl_mean"), "kl_mean is logged only with train.kl_coef > 0");
            Directory.Delete(dir, true);

            // A reward that cannot tell a group's images apart: every group counts, and nothing is learned from it.
            dir = TestPaths.NewTempDir();
            line = Assert.Single(Train(TinyConfig("num_epochs=1", "algorithm=grpo", "sample.group_size=2"), dir, reward: new ConstantReward()));
            Assert.Equal(2.0, (double)line["zero_std_groups"]!);
            Assert.Equal(0.0, (double)line["loss"]!);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void AdvantageAggregationTrainsOnEveryComponentAndLogsEach()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            var line = Assert.Single(Train(TinyConfig("num_epochs=1", "algorithm=grpo", "sample.group_size=2", "reward_fn=weighted",
                "rewards={ brightness = 1.0, image_contrast = 100.0 }", "reward_mix=advantage_aggr"), dir));
            Assert.Equal(2.0, (double)line["groups"]!);
            Assert.Equal(0.0, (double)line["zero_std_groups_brightness"]!);
            Assert.Equal(0.0, (double)line["zero_std_groups_image_contrast"]!);
            Assert.True(double.IsFinite((double)line["reward_brightness_mean"]!));
            Assert.True(double.IsFinite((double)line["reward_image_contrast_mean"]!));
            Assert.Equal(0.0, (double)line["zero_std_groups"]!);
            Assert.Equal(1.0, (double)line["optimizer_steps"]!);
            Assert.True(double.IsFinite((double)line["loss"]!)); // 0 up to rounding: advantages sum to 0 per group at ratio 1
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void KlToTheBaseModelIsZeroAtTheFirstStepAndGrowsAfterAnUpdate(bool lora)
    {
        // With one optimizer step per epoch, epoch 0 sees the base weights throughout: its KL is exactly 0. The LoRA
        // base model is the adapted UNet with its adapters off; full fine-tuning compares with a frozen copy.
        var dir = TestPaths.NewTempDir();
        try
        {
            var metrics = Train(TinyConfig("num_epochs=2", "train.kl_coef=0.5", $"use_lora={(lora ? "true" : "false")}",
                "train.learning_rate=1e-3"), dir);
            Assert.Equal(0.0, (double)metrics[0]["kl_mean"]!);
            Assert.True((double)metrics[1]["kl_mean"]! > 0, $"kl_mean after one update: {metrics[1]["kl_mean"]}");
            Assert.True(double.IsFinite((double)metrics[1]["loss"]!));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void SdeWindowStepsOutsideAreDeterministicDdim()
    {
        using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        string[] prompts = ["a cat", "a dog"];
        var options = new SamplingOptions { NumSteps = 4, Eta = 1, GuidanceScale = 3, FinalStep = DdimFinalStep.Ddpo, RecordTrajectory = true, SdeWindow = new StepWindow(1, 3) };
        using var windowed = pipeline.Sample(prompts, options, new Generator(7));
        using var ode = pipeline.Sample(prompts, options with { Eta = 0, SdeWindow = null }, new Generator(7));
        using var sde = pipeline.Sample(prompts, options with { SdeWindow = null }, new Generator(7));
        var w = windowed.Trajectory!;
        // Step 0 is outside: deterministic, the same as sampling with eta 0 all along, and unlike eta 1.
        Assert.True(w.Latents[.., 1].equal(ode.Trajectory!.Latents[.., 1]).all().item<bool>());
        Assert.False(w.Latents[.., 1].equal(sde.Trajectory!.Latents[.., 1]).all().item<bool>());
        // Inside steps have a log-probability; outside ones none (zero variance).
        using var finite = w.LogProbs.isfinite();
        Assert.Equal(new[] { false, true, true, false }, Enumerable.Range(0, 4).Select(j => finite[0, j].item<bool>()).ToArray());
        // Step 3 (outside) is exactly the eta-0 DDIM step from the recorded x_3.
        using (no_grad())
        {
            pipeline.Scheduler.SetTimesteps(4);
            var t = tensor(w.Timesteps[3]);
            var eps = pipeline.PredictNoise(w.Latents[.., 3], t, w.PromptEmbeds, w.NegativeEmbeds, 3);
            var step = pipeline.Scheduler.Step(eps, t, w.Latents[.., 3], 0.0, noise: zeros_like(eps), finalStep: DdimFinalStep.Ddpo);
            Assert.True(step.PrevSample.equal(w.Latents[.., 4]).all().item<bool>(), "the last step is not the eta-0 DDIM step");
            // Inside steps are stochastic: x_2 is not the deterministic step from x_1.
            var t1 = tensor(w.Timesteps[1]);
            var eps1 = pipeline.PredictNoise(w.Latents[.., 1], t1, w.PromptEmbeds, w.NegativeEmbeds, 3);
            var det = pipeline.Scheduler.Step(eps1, t1, w.Latents[.., 1], 0.0, noise: zeros_like(eps1), finalStep: DdimFinalStep.Ddpo);
            Assert.False(det.PrevSample.allclose(w.Latents[.., 2], rtol: 1e-3, atol: 1e-3));
        }
    }

    [Fact]
    public void SlidingWindowTrainsItsStepsAndResumesExactly()
    {
        // GRPO + KL + a window of 2 of the 4 steps moving one step per epoch: [0, 2), [1, 3), [2, 4).
        string[] settings = ["algorithm=grpo", "sample.group_size=2", "train.kl_coef=0.5", "sample.num_steps=4",
            "sample.sde_window=[0, 2]", "sample.sde_window_shift=1", "train.timestep_fraction=1.0", "train.learning_rate=1e-3"];
        var full = TestPaths.NewTempDir();
        var split = TestPaths.NewTempDir();
        try
        {
            var totals = new List<int>();
            var expected = Train(TinyConfig([.. settings, "num_epochs=3"]), full, observer: new TrainingTotals(totals));
            Assert.Equal(new[] { 2, 2, 2 }, totals); // one batch, the window's 2 steps each epoch
            Assert.All(expected, line => Assert.Equal(0.0, (double)line["first_ratio_max_dev"]!));
            Assert.Equal(0.0, (double)expected[0]["kl_mean"]!);
            Assert.True((double)expected[2]["kl_mean"]! > 0);
            Train(TinyConfig([.. settings, "num_epochs=2"]), split);
            var resumed = Train(TinyConfig([.. settings, "num_epochs=3"]), split, resume: true);
            Assert.Equal(3, resumed.Count);
            for (int e = 0; e < 3; e++)
            {
                foreach (var key in new[] { "reward_mean", "loss", "approx_kl", "clipfrac", "kl_mean", "zero_std_groups", "first_ratio_max_dev" })
                {
                    Assert.Equal((double)expected[e][key]!, (double)resumed[e][key]!, 9);
                }
            }
        }
        finally
        {
            Directory.Delete(full, true);
            Directory.Delete(split, true);
        }
    }

    [Fact]
    public void PendingEpochsKeepTheGroupIds()
    {
        // An epoch whose rewards failed is kept on disk and scored on --resume: GRPO needs its group ids back.
        var dir = TestPaths.NewTempDir();
        try
        {
            var run = new RunFolder(dir);
            using var samples = new EpochSamples
            {
                Prompts = ["a cat", "a cat", "a cat", "a cat"],
                Metadata = Enumerable.Range(0, 4).Select(_ => (IReadOnlyDictionary<string, string>)new Dictionary<string, string>()).ToArray(),
                Condition = StableDiffusionPolicy.Condition(zeros(new long[] { 4, 2, 3 })),
                Times = zeros(new long[] { 4, 2 }, ScalarType.Int64),
                Latents = zeros(new long[] { 4, 2, 3, 4, 4 }),
                NextLatents = zeros(new long[] { 4, 2, 3, 4, 4 }),
                LogProbs = zeros(new long[] { 4, 2 }),
                Rewards = [float.NaN, float.NaN, float.NaN, float.NaN],
                Groups = [0, 0, 1, 1], // two groups drew the same prompt
            };
            using var images = zeros(new long[] { 4, 3, 4, 4 });
            PendingSamples.Save(run, 3, samples, images);
            var (loaded, loadedImages) = PendingSamples.TryLoad(run, 3, CPU)!.Value;
            using (loaded)
            using (loadedImages)
            {
                Assert.Equal(new long[] { 0, 0, 1, 1 }, loaded.Groups);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private sealed class TrainingTotals(List<int> totals) : ITrainingObserver
    {
        public void PhaseStarted(int epoch, string phase, int total)
        {
            if (phase == "training") totals.Add(total);
        }
        public void PhaseProgress(string phase, int done) { }
        public void EpochFinished(EpochMetrics metrics) { }
        public void Message(string text) { }
    }

    private sealed class ConstantReward : IRewardFunction
    {
        public string Name => "constant";
        public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct) =>
            Task.FromResult(new RewardResult(Enumerable.Repeat(1f, (int)batch.Images.shape[0]).ToArray()));
    }
}
