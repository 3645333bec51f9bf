using System.Text.Json;
using Ddpo.Runs;

namespace Ddpo.Training;

/// <summary>Makes an epoch's <see cref="EpochMetrics"/> (its metrics.jsonl line) from the trainer's objects.</summary>
internal static class EpochMetricsBuilder
{
    /// <summary>
    /// The trainer's metrics of an epoch: <c>epoch</c>, reward statistics over the rewards of <paramref name="samples"/>
    /// (the finite ones) (<c>reward_mean</c>; <c>reward_std</c> with n in the denominator, as ddpo-pytorch logs numpy's
    /// <c>std()</c>; <c>reward_sem</c> from <see cref="Evaluation.StandardError.OfMean"/>; min, max;
    /// <c>reward_collapsed</c>, see <see cref="EpochMetrics.IsCollapsed"/>), <c>approx_kl</c>, <c>clipfrac</c>, <c>loss</c>,
    /// counts (<c>samples_trained</c>: the samples the update used; <c>skipped_steps</c>, steps skipped on a non-finite
    /// loss or gradients, and the current <c>loss_scale</c>, 1 without scaling), phase times, with <c>train.kl_coef</c>
    /// &gt; 0 <c>kl_mean</c> (the mean KL to the base model over the trained steps), then the per-component and watched
    /// reward means, the per-prompt mean rewards and the fields of <paramref name="extra"/> (the advantages' counts,
    /// e.g. GRPO's <c>groups</c>, <c>zero_std_groups</c>).
    /// </summary>
    public static EpochMetrics Build(int epoch, EpochSamples samples, int sampled, int nonFinite,
        UpdateStats stats, double samplingSeconds, double rewardSeconds, double evalSeconds, double learningRate,
        IReadOnlyDictionary<string, object?>? extra = null) =>
        Build(epoch, samples.Prompts, samples.Rewards, samples.RewardDetails, sampled, nonFinite, stats, samplingSeconds, rewardSeconds,
            evalSeconds, learningRate, extra);

    /// <summary>
    /// <see cref="Build(int, EpochSamples, int, int, UpdateStats, double, double, double, double, IReadOnlyDictionary{string, object?}?)"/>
    /// from the samples' prompts, rewards and reward details alone (reward backpropagation keeps no trajectories).
    /// </summary>
    public static EpochMetrics Build(int epoch, string[] prompts, float[] rewards, IReadOnlyDictionary<string, float[]> rewardDetails,
        int sampled, int nonFinite, UpdateStats stats, double samplingSeconds, double rewardSeconds, double evalSeconds, double learningRate,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        var r = rewards.Select(x => (double)x).ToArray();
        double mean = r.Length > 0 ? r.Average() : double.NaN;
        double std = r.Length > 0 ? Math.Sqrt(r.Select(x => (x - mean) * (x - mean)).Sum() / r.Length) : double.NaN;
        var other = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var (name, values) in rewardDetails)
        {
            var finite = values.Where(float.IsFinite).ToArray();
            var key = name.StartsWith(Rewards.WatchedReward.DetailPrefix, StringComparison.Ordinal)
                ? $"watch_{name[Rewards.WatchedReward.DetailPrefix.Length..]}_mean"
                : $"reward_{name}_mean";
            other[key] = Element(finite.Length > 0 ? finite.Average() : double.NaN);
        }
        other["prompt_rewards"] = Element(prompts.Zip(rewards)
            .GroupBy(p => p.First)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (object?)new Dictionary<string, object?> { ["mean"] = g.Average(x => (double)x.Second), ["n"] = g.Count() }));
        foreach (var (key, value) in extra ?? new Dictionary<string, object?>()) other[key] = Element(value);
        return new EpochMetrics
        {
            Epoch = epoch,
            RewardMean = mean,
            RewardStd = std,
            RewardSem = Evaluation.StandardError.OfMean(r),
            RewardMin = r.Length > 0 ? r.Min() : double.NaN,
            RewardMax = r.Length > 0 ? r.Max() : double.NaN,
            RewardCollapsed = EpochMetrics.IsCollapsed(r),
            ApproxKl = stats.ApproxKl,
            ClipFrac = stats.ClipFrac,
            Loss = stats.Loss,
            FirstRatioMaxDev = stats.FirstRatioMaxDeviation,
            Samples = sampled,
            SamplesTrained = stats.Samples,
            NonfiniteRewards = nonFinite,
            OptimizerSteps = stats.OptimizerSteps,
            SkippedSteps = stats.SkippedSteps,
            LossScale = stats.LossScale,
            LearningRate = learningRate,
            SamplingSeconds = Math.Round(samplingSeconds, 3),
            RewardSeconds = Math.Round(rewardSeconds, 3),
            TrainingSeconds = Math.Round(stats.Seconds, 3),
            EvalImagesSeconds = Math.Round(evalSeconds, 3),
            Time = DateTimeOffset.UtcNow,
            KlMeanOrNull = stats.KlMean,
            OtherFields = other,
            Source = $"epoch {epoch}",
        };
    }

    /// <summary>A value as the metrics line writes it.</summary>
    private static JsonElement Element(object? value) => JsonSerializer.SerializeToElement(value, MetricsLog.Options);
}
