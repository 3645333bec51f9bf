using System.Text.RegularExpressions;
using Ddpo.Benchmarks;
using Ddpo.Cli;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;

namespace Ddpo.Tests.Cli;

/// <summary><c>ddpo bench reward</c> runs (its speed is not tested): built-in, weighted and learned rewards, with the config's settings.</summary>
[Collection("cli")]
public sealed class BenchRewardCliTests
{
    private static double MsPerImage(string output)
    {
        var m = Regex.Match(output, @"reward_ms_per_image=([0-9.]+) reward_images_per_s=([0-9.]+) scored=(\d+)");
        Assert.True(m.Success, output);
        return double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void BenchRewardTimesABuiltinAndAWeightedReward()
    {
        var (code, output) = CliTests.Capture(() => CliApp.Run(["bench", "reward", "--reward", "jpeg_compressibility", "--batch", "3",
            "--resolution", "32", "--iters", "2", "--warmup", "0", "--device", "cpu"]));
        Assert.True(code == 0, output);
        Assert.True(MsPerImage(output) > 0);
        Assert.Contains("scored=3", output);

        // The config's reward_fn by default: here a weighted sum, its components scoring every image.
        (code, output) = CliTests.Capture(() => CliApp.Run(["bench", "reward", "--set", "rewards.brightness=1.0", "--set", "rewards.colorfulness=0.5",
            "--batch", "2", "--resolution", "16", "--iters", "1", "--device", "cpu"]));
        Assert.True(code == 0, output);
        Assert.Contains("scored=2", output);
        Assert.True(MsPerImage(output) > 0);

        // An unknown reward is bad input naming it.
        (code, output) = CliTests.Capture(() => CliApp.Run(["bench", "reward", "--reward", "no_such_reward", "--device", "cpu"]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("no_such_reward", output);
    }

    [Fact]
    public void BenchRewardLoadsImageRewardFromTheConfigOnTheTinyFixture()
    {
        var dir = TestPaths.Fixture("refenv", "imagereward");
        var (code, output) = CliTests.Capture(() => CliApp.Run(["bench", "reward", "--reward", "imagereward",
            "--set", $"reward.imagereward.model={Path.Combine(dir, "model")}", "--set", $"reward.imagereward.processor={Path.Combine(dir, "bert-base-uncased")}",
            "--prompts", "simple_animals", "--batch", "2", "--resolution", "64", "--iters", "1", "--device", "cpu", "--dtype", "fp32"]));
        Assert.True(code == 0, output);
        Assert.Contains("scored=2", output);
        Assert.Contains("fp32", output);
    }

    [Fact]
    public void TheBenchmarkScoresTheBatchOnTheGivenDtypeAndChecksItsSizes()
    {
        var seen = new List<(IReadOnlyList<string> Prompts, torch.ScalarType DType, long[] Shape, double Min, double Max)>();
        var reward = new DelegateReward("probe", b =>
        {
            seen.Add((b.Prompts, b.Images.dtype, b.Images.shape, b.Images.min().ToDouble(), b.Images.max().ToDouble()));
            return Enumerable.Repeat(1f, b.Count).ToArray();
        });
        var prompts = new[] { new PromptSample("a cat", PromptSample.NoMetadata), new PromptSample("a dog", PromptSample.NoMetadata) };
        var r = RewardBenchmark.Run(reward, prompts, batch: 3, resolution: 8, torch.CPU, torch.ScalarType.BFloat16, warmup: 1, iterations: 2);
        Assert.Equal(3, seen.Count); // 1 warm-up + 2 timed
        Assert.Equal(["a cat", "a dog", "a cat"], seen[0].Prompts);
        Assert.Equal(torch.ScalarType.BFloat16, seen[0].DType);
        Assert.Equal(new long[] { 3, 3, 8, 8 }, seen[0].Shape);
        Assert.InRange(seen[0].Min, 0.0, 1.0); // decoded images' range
        Assert.InRange(seen[0].Max, 0.0, 1.0);
        Assert.Equal(3, r.Finite);
        Assert.Equal(r.MillisecondsPerBatch / 3, r.MillisecondsPerImage, 12);
        Assert.Throws<ArgumentException>(() => RewardBenchmark.Run(reward, prompts, batch: 0, resolution: 8, torch.CPU, torch.ScalarType.Float32));
        Assert.Throws<ArgumentException>(() => RewardBenchmark.Run(reward, [], batch: 1, resolution: 8, torch.CPU, torch.ScalarType.Float32));
    }
}
