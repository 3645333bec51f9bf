using Ddpo.Runs;
using Ddpo.Rewards;
using Ddpo.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Ddpo.Tests.Training;

/// <summary>
/// Reward backpropagation learns: draft (K = 2), draft_lv (n = 2), refl and alignprop each raise the brightness of the tiny pixel-space
/// pipeline's images by more than 5 standard errors in a short run, for three seeds, through the trainer (config keys,
/// epoch loop, optimizer, metrics). The brightness reward's gradient is exact, so few steps suffice; the gain is the
/// mean of the last two epochs against the first epoch (whose images are those of the untrained model's policy).
/// Measured with 6 epochs of 4 steps (K = 2, ReFL steps 2..3, AlignProp K 1..4), all nine runs gained 18 to 33 SE with
/// +0.05 to +0.06 brightness per epoch; the test runs 4 epochs of 3 steps to keep within the suite's time (there,
/// with 4 epochs, all twelve gained 12.4 to 16.8 SE; draft_lv 12.4 to 16.5 SE, 5 to 12 s a run on a loaded 2-core machine).
/// </summary>
[Collection("training")]
public sealed class RewardBackpropLearningTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("draft", 1)]
    [InlineData("draft", 2)]
    [InlineData("draft", 3)]
    [InlineData("refl", 1)]
    [InlineData("refl", 2)]
    [InlineData("refl", 3)]
    [InlineData("alignprop", 1)]
    [InlineData("alignprop", 2)]
    [InlineData("alignprop", 3)]
    [InlineData("draft_lv", 1)]
    [InlineData("draft_lv", 2)]
    [InlineData("draft_lv", 3)]
    public void ShortRunRaisesBrightness(string algorithm, int seed)
    {
        var root = TestPaths.NewTempDir();
        var config = TinyTraining.Config(
            $"algorithm=\"{algorithm}\"", "reward_fn=\"brightness\"", "sample.num_steps=3", "sample.batch_size=8",
            "sample.num_batches_per_epoch=1", "train.batch_size=8", "train.gradient_accumulation_steps=1", "sample.guidance_scale=1.0",
            "use_lora=false", "train.learning_rate=1e-3", "num_epochs=4", "logging.num_eval_images=0", "save_freq=100",
            "draft.k=2", "refl.min_step=1", "refl.max_step=2", "alignprop.min_k=1", "alignprop.max_k=3", $"seed={seed}");
        var m = TinyTraining.Train(config, Path.Combine(root, "run"), reward: ImageStatisticReward.Brightness());
        double first = (double)m[0]["reward_mean"]!, firstSem = (double)m[0]["reward_sem"]!;
        var last = m.TakeLast(2).ToArray();
        double lastMean = last.Average(x => (double)x["reward_mean"]!);
        double lastSem = Math.Sqrt(last.Sum(x => Math.Pow((double)x["reward_sem"]!, 2))) / last.Length;
        double gain = lastMean - first, se = Math.Sqrt(firstSem * firstSem + lastSem * lastSem);
        output.WriteLine(string.Join(" ", m.Select(x => ((double)x["reward_mean"]!).ToString("F4"))));
        output.WriteLine($"{algorithm} seed {seed}: {first:F4} -> {lastMean:F4} gain {gain:F4} = {gain / se:F2} SE");
        Assert.True(gain > 5 * se, $"brightness went from {first:F4} ± {firstSem:F4} to {lastMean:F4} ± {lastSem:F4}: gain {gain:F4} is not above 5 SE ({5 * se:F4})");
        Directory.Delete(root, true);
    }

    /// <summary>
    /// A reward-backpropagation run logs its watch rewards as a sampling run does (<c>watch_NAME_mean</c>), scored on the
    /// images the loss scored: the watched brightness is the optimised brightness itself.
    /// </summary>
    [Fact]
    public void WatchRewardsAreLoggedOnTheTrainedImages()
    {
        var root = TestPaths.NewTempDir();
        var config = TinyTraining.Config(
            "algorithm=\"draft\"", "reward_fn=\"brightness\"", "sample.num_steps=3", "sample.batch_size=8",
            "sample.num_batches_per_epoch=1", "train.batch_size=4", "train.gradient_accumulation_steps=2", "sample.guidance_scale=1.0",
            "use_lora=false", "train.learning_rate=1e-3", "num_epochs=2", "logging.num_eval_images=0", "save_freq=100", "draft.k=1");
        var reward = new WatchedReward(ImageStatisticReward.Brightness(), [ImageStatisticReward.Brightness(), ImageStatisticReward.Contrast()]);
        var m = TinyTraining.Train(config, Path.Combine(root, "run"), reward: reward);
        Assert.Equal(2, m.Count);
        foreach (var epoch in m)
        {
            Assert.Equal((double)epoch["reward_mean"]!, (double)epoch["watch_brightness_mean"]!, 5);
            Assert.InRange((double)epoch["watch_image_contrast_mean"]!, 1e-4, 1.0);
        }
        Assert.NotEqual((double)m[0]["watch_image_contrast_mean"]!, (double)m[1]["watch_image_contrast_mean"]!);
        Directory.Delete(root, true);
    }
}
