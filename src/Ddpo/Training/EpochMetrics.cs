using System.Globalization;

namespace Ddpo.Training;

/// <summary>The mean reward of one prompt in one epoch and how many samples it averages.</summary>
/// <param name="Mean">Mean reward (NaN where the trainer logged NaN).</param>
/// <param name="Count">Number of samples of the prompt in the epoch.</param>
public readonly record struct PromptReward(double Mean, int Count);

/// <summary>
/// One epoch's metrics: one line of <c>metrics.jsonl</c>, typed. The trainer makes it (<see cref="Build"/>) and hands it
/// to every <see cref="ITrainingObserver"/>; the report reads it back (<see cref="FromValues"/>). A number the line
/// lacks (a file written by an older version) is NaN. <see cref="Values"/> keeps the whole line, fields this
/// version does not name included.
/// </summary>
public sealed record EpochMetrics
{
    /// <summary><c>epoch</c>.</summary>
    public required int Epoch { get; init; }
    /// <summary><c>reward_mean</c>: mean of the finite rewards the update used.</summary>
    public double RewardMean { get; init; } = double.NaN;
    /// <summary><c>reward_std</c>, with n in the denominator (numpy's <c>std()</c>, as ddpo-pytorch logs it).</summary>
    public double RewardStd { get; init; } = double.NaN;
    /// <summary><c>reward_sem</c>: standard error of <see cref="RewardMean"/>.</summary>
    public double RewardSem { get; init; } = double.NaN;
    /// <summary><c>reward_min</c>.</summary>
    public double RewardMin { get; init; } = double.NaN;
    /// <summary><c>reward_max</c>.</summary>
    public double RewardMax { get; init; } = double.NaN;
    /// <summary>
    /// <c>reward_collapsed</c>: every reward of the epoch was the same (see <see cref="IsCollapsed"/>), e.g. all images
    /// black: the policy has likely collapsed. Null where the line lacks the field (written by an older version).
    /// </summary>
    public bool? RewardCollapsed { get; init; }
    /// <summary><c>approx_kl</c> between the sampling and the updated policy.</summary>
    public double ApproxKl { get; init; } = double.NaN;
    /// <summary><c>clipfrac</c>: fraction of importance ratios outside the clip range.</summary>
    public double ClipFrac { get; init; } = double.NaN;
    /// <summary><c>loss</c>.</summary>
    public double Loss { get; init; } = double.NaN;
    /// <summary><c>first_ratio_max_dev</c>: largest |ratio - 1| of the epoch's first micro-batch (0 when sampling and training agree).</summary>
    public double FirstRatioMaxDev { get; init; } = double.NaN;
    /// <summary><c>samples</c>: samples drawn.</summary>
    public double Samples { get; init; } = double.NaN;
    /// <summary><c>samples_trained</c>: samples the update used.</summary>
    public double SamplesTrained { get; init; } = double.NaN;
    /// <summary><c>nonfinite_rewards</c>: samples dropped for a NaN or infinite reward.</summary>
    public double NonfiniteRewards { get; init; } = double.NaN;
    /// <summary><c>optimizer_steps</c>.</summary>
    public double OptimizerSteps { get; init; } = double.NaN;
    /// <summary><c>skipped_steps</c>: optimizer steps skipped because their loss or gradients were not finite (any precision).</summary>
    public double SkippedSteps { get; init; } = double.NaN;
    /// <summary><c>loss_scale</c> (1 without loss scaling).</summary>
    public double LossScale { get; init; } = double.NaN;
    /// <summary><c>learning_rate</c>.</summary>
    public double LearningRate { get; init; } = double.NaN;
    /// <summary><c>sampling_s</c>: seconds spent sampling.</summary>
    public double SamplingSeconds { get; init; } = double.NaN;
    /// <summary><c>reward_s</c>: seconds spent computing rewards.</summary>
    public double RewardSeconds { get; init; } = double.NaN;
    /// <summary><c>training_s</c>: seconds spent in the policy update.</summary>
    public double TrainingSeconds { get; init; } = double.NaN;
    /// <summary><c>eval_images_s</c>: seconds spent on the fixed-seed image grid.</summary>
    public double EvalImagesSeconds { get; init; } = double.NaN;
    /// <summary><c>kl_mean</c>: mean KL to the base model over the trained steps (only with <c>train.kl_coef</c> &gt; 0).</summary>
    public double KlMean { get; init; } = double.NaN;
    /// <summary><c>groups</c>: prompt groups of the epoch (GRPO).</summary>
    public double Groups { get; init; } = double.NaN;
    /// <summary><c>zero_std_groups</c>: groups whose rewards were all equal, which add no policy gradient (GRPO).</summary>
    public double ZeroStdGroups { get; init; } = double.NaN;
    /// <summary><c>time</c>: when the epoch finished; null where absent or unparsable.</summary>
    public DateTimeOffset? Time { get; init; }
    /// <summary><c>reward_NAME_mean</c>: the mean of each component of a weighted reward, by NAME.</summary>
    public IReadOnlyDictionary<string, double> RewardComponentMeans { get; init; } = new Dictionary<string, double>();
    /// <summary><c>watch_NAME_mean</c>: the mean of each watched (logged, not optimised) reward, by NAME.</summary>
    public IReadOnlyDictionary<string, double> WatchRewardMeans { get; init; } = new Dictionary<string, double>();

    /// <summary>
    /// <c>prompt_rewards</c> (<c>{"a cat": {"mean": 1.2, "n": 4}, ...}</c>); empty where absent.
    /// </summary>
    /// <exception cref="FormatException">The field is present but not shaped like that (read lazily: a report shows the rest).</exception>
    public IReadOnlyDictionary<string, PromptReward> PromptRewards => _promptRewards ??= ParsePromptRewards();

    private IReadOnlyDictionary<string, PromptReward>? _promptRewards;

    /// <summary>Every field of the line, as written to (or read from) <c>metrics.jsonl</c>.</summary>
    public IReadOnlyDictionary<string, object?> Values { get; init; } = new Dictionary<string, object?>();

    /// <summary>Where the line came from (file and record number, or "epoch N" when built in memory), for error messages.</summary>
    public string Source { get; init; } = "";

    /// <summary>The numeric field <paramref name="key"/> of <see cref="Values"/>, or NaN where it is missing or not a number.</summary>
    public double this[string key] => TryGetNumber(key, out var v) ? v : double.NaN;

    /// <summary>Whether <paramref name="key"/> is present and numeric (NaN counts as numeric).</summary>
    public bool TryGetNumber(string key, out double value)
    {
        if (Values.TryGetValue(key, out var o) && AsNumber(o) is { } d)
        {
            value = d;
            return true;
        }
        value = double.NaN;
        return false;
    }

    /// <summary>
    /// Types a metrics line (as <see cref="MetricsReader"/> parses it, or as the trainer builds it);
    /// <paramref name="source"/> names it in errors.
    /// </summary>
    /// <exception cref="FormatException">The line has no whole-number <c>epoch</c>.</exception>
    public static EpochMetrics FromValues(IReadOnlyDictionary<string, object?> values, string source)
    {
        ArgumentNullException.ThrowIfNull(values);
        values.TryGetValue("epoch", out var e);
        if (AsNumber(e) is not { } d || !double.IsFinite(d) || d != Math.Floor(d) || d < 0 || d > int.MaxValue)
        {
            throw new FormatException($"{source}: field 'epoch' must be a non-negative whole number, got {Describe(e)}");
        }
        double N(string key) => values.TryGetValue(key, out var o) && AsNumber(o) is { } x ? x : double.NaN;
        var components = new Dictionary<string, double>(StringComparer.Ordinal);
        var watches = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (key, value) in values)
        {
            if (!key.EndsWith("_mean", StringComparison.Ordinal) || AsNumber(value) is not { } v) continue;
            if (key.StartsWith(WatchPrefix, StringComparison.Ordinal) && key.Length > WatchPrefix.Length + 5)
            {
                watches[key[WatchPrefix.Length..^5]] = v;
            }
            else if (key.StartsWith(RewardPrefix, StringComparison.Ordinal) && key.Length > RewardPrefix.Length + 5)
            {
                components[key[RewardPrefix.Length..^5]] = v;
            }
        }
        return new EpochMetrics
        {
            Epoch = (int)d,
            RewardMean = N("reward_mean"),
            RewardStd = N("reward_std"),
            RewardSem = N("reward_sem"),
            RewardMin = N("reward_min"),
            RewardMax = N("reward_max"),
            RewardCollapsed = values.TryGetValue("reward_collapsed", out var c) && c is bool collapsed ? collapsed : null,
            ApproxKl = N("approx_kl"),
            ClipFrac = N("clipfrac"),
            Loss = N("loss"),
            FirstRatioMaxDev = N("first_ratio_max_dev"),
            Samples = N("samples"),
            SamplesTrained = N("samples_trained"),
            NonfiniteRewards = N("nonfinite_rewards"),
            OptimizerSteps = N("optimizer_steps"),
            SkippedSteps = N("skipped_steps"),
            LossScale = N("loss_scale"),
            LearningRate = N("learning_rate"),
            SamplingSeconds = N("sampling_s"),
            RewardSeconds = N("reward_s"),
            TrainingSeconds = N("training_s"),
            EvalImagesSeconds = N("eval_images_s"),
            KlMean = N("kl_mean"),
            Groups = N("groups"),
            ZeroStdGroups = N("zero_std_groups"),
            Time = values.TryGetValue("time", out var t) && t is string s
                && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) ? time : null,
            RewardComponentMeans = components,
            WatchRewardMeans = watches,
            Values = values,
            Source = source,
        };
    }

    /// <summary>
    /// The trainer's metrics of an epoch: reward statistics over the rewards of <paramref name="samples"/> (the finite
    /// ones) (<c>reward_mean</c>; <c>reward_std</c> with n in the denominator, as ddpo-pytorch logs numpy's
    /// <c>std()</c>; <c>reward_sem</c> from <see cref="Evaluation.StandardError.OfMean"/>; min, max),
    /// per-component means, <c>approx_kl</c>, <c>clipfrac</c>, <c>loss</c>, counts (<c>samples_trained</c>:
    /// the samples the update used; <c>skipped_steps</c>, steps skipped on a non-finite loss or
    /// gradients, and the current <c>loss_scale</c>, 1 without scaling), phase times, the per-prompt mean rewards,
    /// with <c>train.kl_coef</c> &gt; 0 <c>kl_mean</c> (the mean KL to the base model over the trained steps), and the
    /// fields of <paramref name="extra"/> (the advantages' counts, e.g. GRPO's <c>groups</c>, <c>zero_std_groups</c>).
    /// </summary>
    internal static EpochMetrics Build(int epoch, EpochSamples samples, int sampled, int nonFinite,
        UpdateStats stats, double samplingSeconds, double rewardSeconds, double evalSeconds, double learningRate,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        var line = EpochMetricsLine.Build(epoch, samples, sampled, nonFinite, stats, samplingSeconds, rewardSeconds, evalSeconds, learningRate);
        foreach (var (key, value) in extra ?? new Dictionary<string, object?>()) line[key] = value;
        return FromValues(line, $"epoch {epoch}");
    }

    /// <summary>
    /// Whether an epoch's rewards have no spread: at least 2 of them, and max − min at most 1e-12 of the largest
    /// |reward| (exactly equal for rewards of 0): every image scored the same, as when the policy collapsed to
    /// one image (all black, every JPEG the same size). Such an epoch teaches nothing: its advantages are all 0.
    /// </summary>
    public static bool IsCollapsed(IReadOnlyList<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        if (rewards.Count < 2) return false;
        double min = rewards.Min(), max = rewards.Max();
        return double.IsFinite(min) && double.IsFinite(max) && max - min <= CollapseTolerance * Math.Max(Math.Abs(min), Math.Abs(max));
    }

    /// <summary>The relative spread (max − min over the largest |reward|) at or below which <see cref="IsCollapsed"/> holds.</summary>
    public const double CollapseTolerance = 1e-12;

    /// <summary>
    /// The warning for an epoch whose rewards collapsed (<see cref="RewardCollapsed"/>), naming the epoch and the
    /// reward, what it likely means and what to try; null for any other epoch.
    /// </summary>
    public string? CollapseWarning() => RewardCollapsed == true
        ? string.Create(CultureInfo.InvariantCulture,
            $"epoch {Epoch}: all {(double.IsFinite(Samples - NonfiniteRewards) ? (Samples - NonfiniteRewards).ToString(CultureInfo.InvariantCulture) + " " : "")}rewards are {RewardMean:G6} (zero spread): the policy has likely collapsed and produces identical images, so the update has no signal; lower train.learning_rate or use the KL penalty (train.kl_coef > 0)")
        : null;

    private const string WatchPrefix = "watch_";
    private const string RewardPrefix = "reward_";

    private Dictionary<string, PromptReward> ParsePromptRewards()
    {
        var result = new Dictionary<string, PromptReward>(StringComparer.Ordinal);
        if (!Values.TryGetValue("prompt_rewards", out var o) || o is null) return result;
        if (o is not IReadOnlyDictionary<string, object?> prompts)
        {
            throw new FormatException($"{Source}: field 'prompt_rewards' must be an object of prompt -> {{\"mean\", \"n\"}}, got {Describe(o)}");
        }
        foreach (var (prompt, stats) in prompts)
        {
            if (stats is not IReadOnlyDictionary<string, object?> s || !s.TryGetValue("mean", out var m) || AsNumber(m) is not { } mean)
            {
                throw new FormatException($"{Source}: field 'prompt_rewards' entry '{prompt}' must be an object with a numeric \"mean\", got {Describe(stats)}");
            }
            int n = s.TryGetValue("n", out var c) && AsNumber(c) is { } cd && double.IsFinite(cd) ? (int)cd : 0;
            result[prompt] = new PromptReward(mean, n);
        }
        return result;
    }

    /// <summary>A number as read from JSON (double) or as built in memory (int, long, float, double); null otherwise.</summary>
    private static double? AsNumber(object? o) => o switch
    {
        double d => d,
        float f => f,
        int i => i,
        long l => l,
        _ => null,
    };

    private static string Describe(object? o) => o switch
    {
        null => "nothing",
        string s => $"the string \"{s}\"",
        double d => d.ToString(CultureInfo.InvariantCulture),
        _ => o.GetType().Name,
    };
}
