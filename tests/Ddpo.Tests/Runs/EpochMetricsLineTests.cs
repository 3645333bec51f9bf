using Ddpo.Pipelines;
using System.Globalization;
using Ddpo.Prompts;
using Ddpo.Runs;
using Ddpo.Training;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Runs;

/// <summary>
/// The metrics.jsonl line is the same bytes as before it became a typed record: the expected lines below were written
/// by the dictionary-based code (EpochMetricsLine + MetricsWriter) from the same inputs.
/// </summary>
public sealed class EpochMetricsLineTests
{
    // NaN loss, float reward components (one all-NaN), a watched reward, kl_mean, GRPO counts, prompts that need escaping.
    private const string Full = """
        {"epoch":7,"reward_mean":1.62999999076128,"reward_std":1.9584687812766706,"reward_sem":0.9792343906383353,"reward_min":-1.25,"reward_max":4,"reward_collapsed":false,"approx_kl":1.2345678901234568E-05,"clipfrac":0.25,"loss":"NaN","first_ratio_max_dev":0,"samples":6,"samples_trained":5,"nonfinite_rewards":1,"optimizer_steps":3,"skipped_steps":1,"loss_scale":65536,"learning_rate":0.0003,"sampling_s":1.234,"reward_s":0,"training_s":12.346,"eval_images_s":100,"time":"2026-01-02T03:04:05.1234567\u002B00:00","kl_mean":0.30000000000000004,"reward_jpeg_mean":0.15000003576278687,"watch_aesthetic_mean":7.119999885559082,"reward_broken_mean":"NaN","prompt_rewards":{"a cat\u0027s \u003Chat\u003E":{"mean":1.6999999769032001,"n":2},"b":{"mean":3,"n":2},"\u00E9clair":{"mean":-1.25,"n":1}},"groups":2,"zero_std_groups":0}
        """;

    // A collapsed epoch without kl_mean, reward components or advantage counts.
    private const string Plain = """
        {"epoch":0,"reward_mean":1,"reward_std":0,"reward_sem":0,"reward_min":1,"reward_max":1,"reward_collapsed":true,"approx_kl":0,"clipfrac":0,"loss":0.5,"first_ratio_max_dev":0,"samples":4,"samples_trained":4,"nonfinite_rewards":0,"optimizer_steps":1,"skipped_steps":0,"loss_scale":1,"learning_rate":0.0001,"sampling_s":0,"reward_s":0,"training_s":0,"eval_images_s":0,"time":"2026-01-02T03:04:05.0000000\u002B00:00","prompt_rewards":{"a":{"mean":1,"n":2},"b":{"mean":1,"n":2}}}
        """;

    private static DateTimeOffset Time(string o) => DateTimeOffset.Parse(o, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    [Fact]
    public void TheBuiltLineIsTheSameBytesAsBefore()
    {
        using var scope = NewDisposeScope();
        using var samples = new EpochSamples
        {
            Prompts = ["a cat's <hat>", "b", "a cat's <hat>", "b", "\u00e9clair"],
            Metadata = Enumerable.Repeat(PromptSample.NoMetadata, 5).ToArray(),
            Condition = StableDiffusionPolicy.Condition(zeros(5, 1, 1)),
            Times = zeros(new long[] { 5, 1 }, dtype: ScalarType.Int64),
            Latents = zeros(5, 1, 1),
            NextLatents = zeros(5, 1, 1),
            LogProbs = zeros(5, 1),
            Rewards = [0.1f, 2f, 3.3f, 4f, -1.25f],
            RewardDetails = new Dictionary<string, float[]>
            {
                ["jpeg"] = [0.1f, 0.2f, 0.3f, float.NaN, 1e-7f],
                ["watch:aesthetic"] = [5.5f, 6.1f, 7f, 8f, 9f],
                ["broken"] = [float.NaN, float.NaN, float.NaN, float.NaN, float.NaN],
            },
        };
        var stats = new UpdateStats(double.NaN, 1.2345678901234567e-5, 0.25, 0.0, 3, 6, 12.3456789, 5, SkippedSteps: 1, LossScale: 65536, KlMean: 0.1 + 0.2);
        var extra = new Dictionary<string, object?> { ["groups"] = 2, ["zero_std_groups"] = 0 };
        var line = EpochMetricsBuilder.Build(7, samples, 6, 1, stats, 1.23449, 0.0005, 100, 3e-4, extra)
            with { Time = Time("2026-01-02T03:04:05.1234567+00:00") };
        Assert.Equal(Full, MetricsLog.Serialize(line));
        Assert.Equal(2, line.Groups);
        Assert.Equal(0, line.ZeroStdGroups);
        Assert.Equal(0.1 + 0.2, line.KlMean);
        Assert.Equal(["broken", "jpeg"], line.RewardComponentMeans.Keys.Order());
        Assert.Equal(["aesthetic"], line.WatchRewardMeans.Keys);
        Assert.Equal(new PromptReward(-1.25, 1), line.PromptRewards["\u00e9clair"]);

        using var plain = new EpochSamples
        {
            Prompts = ["a", "b", "a", "b"], Metadata = Enumerable.Repeat(PromptSample.NoMetadata, 4).ToArray(),
            Condition = StableDiffusionPolicy.Condition(zeros(4, 1, 1)), Times = zeros(new long[] { 4, 1 }, dtype: ScalarType.Int64),
            Latents = zeros(4, 1, 1), NextLatents = zeros(4, 1, 1), LogProbs = zeros(4, 1), Rewards = [1f, 1f, 1f, 1f],
        };
        var collapsed = EpochMetricsBuilder.Build(0, plain, 4, 0, new UpdateStats(0.5, 0, 0, 0, 1, 1, 0, 4), 0, 0, 0, 1e-4)
            with { Time = Time("2026-01-02T03:04:05.0000000+00:00") };
        Assert.Equal(Plain, MetricsLog.Serialize(collapsed));
        Assert.True(double.IsNaN(collapsed.KlMean));
        Assert.True(double.IsNaN(collapsed.Groups));
    }

    [Theory]
    [InlineData(Full)]
    [InlineData(Plain)]
    public void ALineReadBackIsWrittenAgainByteForByte(string json)
    {
        var line = MetricsLog.Parse(json, "test");
        Assert.Equal(json, MetricsLog.Serialize(line));
        Assert.Equal(json, MetricsLog.Serialize(MetricsLog.Parse(MetricsLog.Serialize(line), "again")));
    }

    [Fact]
    public void AnOlderLineReadsMissingNumbersAsNaNAndKeepsUnknownFields()
    {
        var line = MetricsLog.Parse("""{"epoch": 3.0, "reward_mean": "NaN", "loss": null, "reward_jpeg_mean": 0.5, "future": {"x": [1, "y"]}, "time": "yesterday"}""", "old");
        Assert.Equal(3, line.Epoch);
        Assert.True(double.IsNaN(line.RewardMean));
        Assert.True(double.IsNaN(line.Loss));
        Assert.True(double.IsNaN(line.RewardStd));
        Assert.Null(line.RewardCollapsed);
        Assert.Null(line.Time);
        Assert.Equal(0.5, line.RewardComponentMeans["jpeg"]);
        Assert.Equal(0.5, line["reward_jpeg_mean"]);
        Assert.True(line.TryGetNumber("reward_mean", out var nan) && double.IsNaN(nan));
        Assert.False(line.TryGetNumber("future", out _));
        Assert.Equal(new List<object?> { 1.0, "y" }, ((Dictionary<string, object?>)line.Values["future"]!)["x"]);
        Assert.Empty(line.PromptRewards);

        foreach (var (bad, got) in new[] { ("{}", "nothing"), ("{\"epoch\": -1}", "-1"), ("{\"epoch\": 1.5}", "1.5"), ("{\"epoch\": \"1\"}", "the string \"1\"") })
        {
            var e = Assert.Throws<FormatException>(() => MetricsLog.Parse(bad, "m.jsonl:7", "m.jsonl record 3"));
            Assert.Equal($"m.jsonl record 3: field 'epoch' must be a non-negative whole number, got {got}", e.Message);
        }
        foreach (var bad in new[] { "[1]", "null", "{\"epoch\": 1, \"epoch\": 2}", "{\"epoch\": 1, \"x\": 1, \"x\": 2}", "{\"epoch\": 1" })
        {
            var e = Assert.Throws<FormatException>(() => MetricsLog.Parse(bad, "m.jsonl:7"));
            Assert.StartsWith("m.jsonl:7: malformed metrics line", e.Message);
        }
        var shape = MetricsLog.Parse("""{"epoch": 1, "prompt_rewards": [1]}""", "m.jsonl:2");
        Assert.Contains("m.jsonl:2: field 'prompt_rewards' must be an object", Assert.Throws<FormatException>(() => shape.PromptRewards).Message);
    }
}
