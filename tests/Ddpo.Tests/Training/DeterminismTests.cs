using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Ddpo.Config;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Tests.Rewards;
using Ddpo.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Ddpo.Tests.Training;

/// <summary>
/// Identical runs give bit-identical <c>metrics.jsonl</c> (once the wall-clock fields are removed: the phase times
/// <c>*_s</c> and <c>time</c>) and bit-identical final weights: with GRPO groups, with one and with several optimizer
/// steps per epoch, with a reward scored asynchronously by a server that answers after random delays, and with
/// different <c>save_freq</c> (checkpointing must not change training). Each configuration runs twice in CI;
/// <c>DDPO_DETERMINISM_REPEATS=20</c> runs it 20 times, every run compared with the first.
/// </summary>
[Collection("training")]
public sealed class DeterminismTests(ITestOutputHelper output)
{
    /// <summary>The environment variable with the number of runs per configuration (default 2, at least 2).</summary>
    public const string RepeatsVariable = "DDPO_DETERMINISM_REPEATS";

    private static int Repeats =>
        int.TryParse(Environment.GetEnvironmentVariable(RepeatsVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 2 ? n : 2;

    [Theory]
    [InlineData("grpo")]
    [InlineData("one_optimizer_step")]
    [InlineData("several_optimizer_steps")]
    [InlineData("async_remote_reward")]
    [InlineData("save_freq")]
    public void IdenticalRunsGiveBitIdenticalMetricsAndWeights(string configuration)
    {
        using var server = configuration == "async_remote_reward" ? SlowRewardServer() : null;
        var clock = Stopwatch.StartNew();
        string? expected = null, expectedWeights = null;
        for (int i = 0; i < Repeats; i++)
        {
            var dir = TestPaths.NewTempDir();
            try
            {
                var config = Config(configuration, i, server?.BaseUrl);
                var reward = server is null ? null : RewardFactory.CreateRegistry(config).Create(config.RewardFn, config.Rewards);
                var lines = TinyTraining.Train(config, dir, reward: reward);
                Assert.Equal(config.NumEpochs, lines.Count);
                var metrics = WithoutWallClock(File.ReadAllText(Path.Combine(dir, "metrics.jsonl")));
                var weights = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(FinalWeights(dir))));
                if (i == 0)
                {
                    // What is compared is the whole line but for the clock: every number of every epoch.
                    Assert.Equal(config.NumEpochs, metrics.Split('\n').Length);
                    foreach (var key in new[] { "\"reward_mean\":", "\"loss\":", "\"approx_kl\":", "\"prompt_rewards\":", "\"reward_collapsed\":false" }) Assert.Contains(key, metrics);
                    Assert.DoesNotContain("\"time\"", metrics);
                    Assert.DoesNotContain("_s\":", metrics);
                    (expected, expectedWeights) = (metrics, weights);
                    AssertTrains(lines, configuration);
                    continue;
                }
                Assert.True(expected == metrics,
                    $"{configuration}: run {i + 1} of {Repeats} logged different metrics than run 1\nrun 1:\n{expected}\nrun {i + 1}:\n{metrics}");
                Assert.True(expectedWeights == weights, $"{configuration}: run {i + 1} of {Repeats} ended with different weights than run 1");
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }
        output.WriteLine($"{configuration}: {Repeats} runs identical in {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>
    /// The configuration's run <paramref name="run"/> (0-based): the tiny 2-epoch run, varied as named. With
    /// <c>save_freq</c> the runs alternate between a checkpoint every epoch and one at the end only.
    /// </summary>
    private static DdpoConfig Config(string configuration, int run, string? rewardUrl) => configuration switch
    {
        "grpo" => TinyTraining.Config("algorithm=grpo", "sample.group_size=2"),
        "one_optimizer_step" => TinyTraining.Config(),
        // 2 samples per step, 2 passes over the epoch: 4 optimizer steps.
        "several_optimizer_steps" => TinyTraining.Config("train.batch_size=2", "train.num_inner_epochs=2"),
        // Two sampling batches per epoch, each scored in the background (one request per image) while the next samples.
        "async_remote_reward" => TinyTraining.Config("sample.batch_size=2", "sample.num_batches_per_epoch=2", "train.batch_size=2",
            "reward_fn=\"remote\"", $"reward.server.base_url=\"{rewardUrl}\"", "reward.server.batch_size=1"),
        "save_freq" => TinyTraining.Config("num_epochs=3", $"save_freq={(run % 2 == 0 ? 1 : 3)}"),
        _ => throw new ArgumentOutOfRangeException(nameof(configuration), configuration, null),
    };

    /// <summary>The runs train (a test of nothing would pass trivially): the configured steps, finite losses, a policy that changes.</summary>
    private static void AssertTrains(List<EpochMetrics> lines, string configuration)
    {
        double steps = configuration switch { "several_optimizer_steps" => 4, "async_remote_reward" => 2, _ => 1 };
        foreach (var line in lines)
        {
            Assert.Equal(steps, (double)line["optimizer_steps"]!);
            Assert.True(double.IsFinite((double)line["loss"]!), $"{configuration}: loss {line["loss"]}");
        }
        // The policy changed: the second epoch samples from updated weights.
        Assert.NotEqual((double)lines[0]["reward_mean"]!, (double)lines[1]["reward_mean"]!);
        if (configuration == "grpo") Assert.Equal(2.0, (double)lines[0]["groups"]!);
    }

    /// <summary>metrics.jsonl, each line re-serialised without the fields that legitimately differ: <c>time</c> and the seconds <c>*_s</c>.</summary>
    internal static string WithoutWallClock(string metrics) => string.Join("\n", metrics.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line =>
    {
        var o = JsonNode.Parse(line)!.AsObject();
        foreach (var key in o.Select(p => p.Key).Where(k => k == "time" || k.EndsWith("_s", StringComparison.Ordinal)).ToList()) o.Remove(key);
        return o.ToJsonString();
    }));

    /// <summary>The trained weights the run exported (LoRA adapters or the full UNet).</summary>
    private static string FinalWeights(string dir)
    {
        var file = Directory.GetFiles(dir, "*.safetensors").OrderBy(f => f, StringComparer.Ordinal).FirstOrDefault();
        Assert.True(file is not null, $"no exported weights in {dir}: {string.Join(", ", Directory.GetFileSystemEntries(dir).Select(Path.GetFileName))}");
        return file!;
    }

    /// <summary>A reward server whose reward depends on the image (kB of the base64 PNG) and that answers after 0-40 ms at random.</summary>
    private static LocalHttpServer SlowRewardServer() => new(async (request, _) =>
    {
        await Task.Delay(Random.Shared.Next(0, 40));
        var images = JsonNode.Parse(request.Body)!["images"]!.AsArray();
        var rewards = new JsonArray(images.Select(i => (JsonNode)JsonValue.Create(i!.GetValue<string>().Length / 1000.0)).ToArray());
        return (200, new JsonObject { ["rewards"] = rewards }.ToJsonString());
    });
}
