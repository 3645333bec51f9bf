using Ddpo.Cli;
using Ddpo.Config;
using Ddpo.Evaluation;
using Ddpo.Rewards;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;

namespace Ddpo.Tests.Evaluation;

/// <summary><c>ddpo eval</c> reports every reward a run computed: reward_fn, each weighted component, the watch rewards.</summary>
[Collection("cli")]
public sealed class EvaluationScorerTests
{
    [Fact]
    public void DefaultRewardsAreTheRunsRewardItsComponentsAndItsWatchRewards()
    {
        var weighted = DdpoConfig.Load(null, "flux-mixgrpo-multireward", ["watch_rewards=colorfulness, pickscore ,image_contrast"]);
        // pickscore is already a component row: not scored twice.
        Assert.Equal(["weighted", "colorfulness", "image_contrast"], EvaluationScorer.DefaultRewardNames(weighted));
        var single = DdpoConfig.Load(null, "compressibility", ["watch_rewards=jpeg_compressibility,brightness"]);
        Assert.Equal(["jpeg_compressibility", "brightness"], EvaluationScorer.DefaultRewardNames(single));

        // Component rows are the config keys, matched to the sum's components in the registry's (ordinal) order.
        var registry = RewardFactory.CreateRegistry(single);
        var sum = registry.Create(RewardNames.Weighted, new Dictionary<string, double> { [RewardNames.ImageContrast] = 0.5, [RewardNames.Brightness] = 1.0 });
        var scorer = EvaluationScorer.Of("weighted", sum, [RewardNames.ImageContrast, RewardNames.Brightness]);
        Assert.Equal(["weighted", "brightness", "image_contrast"], scorer.RowNames);
        Assert.Empty(EvaluationScorer.Of("brightness", registry.Create(RewardNames.Brightness)).Components);
    }

    [Fact]
    public void EvalScoresEveryComponentAndWatchRewardWithPairedErrors()
    {
        var root = TestPaths.NewTempDir();
        var run = Path.Combine(root, "run");
        var config = Path.Combine(root, "weighted.toml");
        File.WriteAllText(config, """
            reward_fn = "weighted"
            rewards = { brightness = 1.0, image_contrast = 0.5 }
            watch_rewards = "colorfulness,brightness"
            """);
        Assert.Equal(0, CliApp.Run([
            "train", "--preset", "compressibility", "--config", config, "--model", TinyModels.Pixel, "--run-dir", run, "--epochs", "1",
            "--set", "prompt_fn=animals_train", "--set", "sample.num_steps=3", "--set", "sample.batch_size=4",
            "--set", "sample.num_batches_per_epoch=1", "--set", "train.batch_size=4", "--set", "train.gradient_accumulation_steps=1",
            "--set", "train.learning_rate=1e-2", "--set", "pretrained.dtype=fp32", "--set", "logging.num_eval_images=0", "--set", "save_freq=1",
            "--device", "cpu",
        ]));

        var evaluation = RunEvaluation.Open(run);
        var options = new EvaluationOptions { PromptSets = ["train"], SeedsPerPrompt = 1, MaxPrompts = 6 };
        var result = evaluation.Evaluate(options, torch.CPU);
        var rows = result.Rows.ToDictionary(r => r.Reward);
        Assert.Equal(["weighted", "brightness", "image_contrast", "colorfulness"], result.Rows.Select(r => r.Reward));
        foreach (var row in result.Rows)
        {
            Assert.Equal("train", row.PromptSet);
            Assert.Equal(6, row.Base.Count);
            Assert.True(double.IsFinite(row.ChangeSem) && row.ChangeSem > 0, $"{row.Reward}: change SE {row.ChangeSem}");
        }
        // The components are the unweighted rewards of the same images: the sum's mean is their weighted mean
        // (per image in double, stored as float: ~1e-7 relative on rewards of order 0.1-1).
        foreach (var pick in new Func<EvaluationRow, RewardSummary>[] { r => r.Base, r => r.FineTuned })
        {
            Assert.Equal(pick(rows["brightness"]).Mean + 0.5 * pick(rows["image_contrast"]).Mean, pick(rows["weighted"]).Mean, 1e-5);
        }

        // A component scored by itself (--reward) gives the same numbers as the row taken from the sum.
        var alone = evaluation.Evaluate(options with { Rewards = [RewardNames.Brightness] }, torch.CPU);
        var brightness = Assert.Single(alone.Rows);
        Assert.Equal(rows["brightness"].Base.Mean, brightness.Base.Mean, 1e-6);
        Assert.Equal(rows["brightness"].FineTuned.Mean, brightness.FineTuned.Mean, 1e-6);
        Assert.Equal(rows["brightness"].ChangeSem, brightness.ChangeSem, 1e-6);
    }
}
