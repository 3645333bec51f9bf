namespace Ddpo.Training;

/// <summary>Builds the metrics.jsonl line of an epoch as a dictionary (typed by <see cref="EpochMetrics.Build"/>).</summary>
internal static class EpochMetricsLine
{
    /// <summary>
    /// The line (see <see cref="EpochMetrics.Build"/>): <c>epoch</c>, reward statistics over the rewards of <paramref name="samples"/> (the finite ones)
    /// (<c>reward_mean</c>; <c>reward_std</c> with n in the denominator, as ddpo-pytorch logs numpy's
    /// <c>std()</c>; <c>reward_sem</c> from <see cref="Evaluation.StandardError.OfMean"/>; min, max;
    /// <c>reward_collapsed</c>, see <see cref="EpochMetrics.IsCollapsed"/>), per-component means, <c>approx_kl</c>, <c>clipfrac</c>, <c>loss</c>, counts (<c>samples_trained</c>:
    /// the samples the update used; <c>skipped_steps</c>, steps skipped on a non-finite loss or
    /// gradients, and the current <c>loss_scale</c>, 1 without scaling), phase times and the per-prompt mean rewards.
    /// </summary>
    public static Dictionary<string, object?> Build(int epoch, EpochSamples samples, int sampled, int nonFinite,
        UpdateStats stats, double samplingSeconds, double rewardSeconds, double evalSeconds, double learningRate)
    {
        var r = samples.Rewards.Select(x => (double)x).ToArray();
        double mean = r.Length > 0 ? r.Average() : double.NaN;
        double std = r.Length > 0 ? Math.Sqrt(r.Select(x => (x - mean) * (x - mean)).Sum() / r.Length) : double.NaN;
        var line = new Dictionary<string, object?>
        {
            ["epoch"] = epoch,
            ["reward_mean"] = mean,
            ["reward_std"] = std,
            ["reward_sem"] = Evaluation.StandardError.OfMean(r),
            ["reward_min"] = r.Length > 0 ? r.Min() : double.NaN,
            ["reward_max"] = r.Length > 0 ? r.Max() : double.NaN,
            ["reward_collapsed"] = EpochMetrics.IsCollapsed(r),
            ["approx_kl"] = stats.ApproxKl,
            ["clipfrac"] = stats.ClipFrac,
            ["loss"] = stats.Loss,
            ["first_ratio_max_dev"] = stats.FirstRatioMaxDeviation,
            ["samples"] = sampled,
            ["samples_trained"] = stats.Samples,
            ["nonfinite_rewards"] = nonFinite,
            ["optimizer_steps"] = stats.OptimizerSteps,
            ["skipped_steps"] = stats.SkippedSteps,
            ["loss_scale"] = stats.LossScale,
            ["learning_rate"] = learningRate,
            ["sampling_s"] = Math.Round(samplingSeconds, 3),
            ["reward_s"] = Math.Round(rewardSeconds, 3),
            ["training_s"] = Math.Round(stats.Seconds, 3),
            ["eval_images_s"] = Math.Round(evalSeconds, 3),
            ["time"] = DateTimeOffset.UtcNow.ToString("O"),
        };
        if (stats.KlMean is { } klMean) line["kl_mean"] = klMean;
        foreach (var (name, values) in samples.RewardDetails)
        {
            var finite = values.Where(float.IsFinite).ToArray();
            var key = name.StartsWith(Rewards.WatchedReward.DetailPrefix, StringComparison.Ordinal)
                ? $"watch_{name[Rewards.WatchedReward.DetailPrefix.Length..]}_mean"
                : $"reward_{name}_mean";
            line[key] = finite.Length > 0 ? finite.Average() : double.NaN;
        }
        line["prompt_rewards"] = samples.Prompts.Zip(samples.Rewards)
            .GroupBy(p => p.First)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (object?)new Dictionary<string, object?> { ["mean"] = g.Average(x => (double)x.Second), ["n"] = g.Count() });
        return line;
    }
}
