using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ddpo.Runs;

/// <summary>The mean reward of one prompt in one epoch and how many samples it averages.</summary>
/// <param name="Mean">Mean reward (NaN where the trainer logged NaN).</param>
/// <param name="Count">Number of samples of the prompt in the epoch.</param>
public readonly record struct PromptReward(double Mean, int Count);

/// <summary>
/// One epoch's metrics: one line of <c>metrics.jsonl</c>, written and read by System.Text.Json (<see cref="MetricsLog"/>)
/// in the key order of its properties, then <see cref="OtherFields"/>. The trainer makes it and hands it to every
/// <c>ITrainingObserver</c>; the report reads it back. A number the line lacks (a file written by an older version)
/// is NaN; fields this version does not name are kept in <see cref="OtherFields"/>.
/// </summary>
public sealed record EpochMetrics : IJsonOnDeserialized
{
    /// <summary><c>epoch</c>.</summary>
    [JsonPropertyName("epoch"), JsonPropertyOrder(0), JsonConverter(typeof(EpochConverter))]
    public required int Epoch
    {
        get => _epoch;
        init
        {
            _epoch = value;
            _hasEpoch = true;
        }
    }

    private readonly int _epoch;
    private readonly bool _hasEpoch;
    /// <summary><c>reward_mean</c>: mean of the finite rewards the update used.</summary>
    [JsonPropertyName("reward_mean"), JsonPropertyOrder(1)]
    public double RewardMean { get; init; } = double.NaN;
    /// <summary><c>reward_std</c>, with n in the denominator (numpy's <c>std()</c>, as ddpo-pytorch logs it).</summary>
    [JsonPropertyName("reward_std"), JsonPropertyOrder(2)]
    public double RewardStd { get; init; } = double.NaN;
    /// <summary><c>reward_sem</c>: standard error of <see cref="RewardMean"/>.</summary>
    [JsonPropertyName("reward_sem"), JsonPropertyOrder(3)]
    public double RewardSem { get; init; } = double.NaN;
    /// <summary><c>reward_min</c>.</summary>
    [JsonPropertyName("reward_min"), JsonPropertyOrder(4)]
    public double RewardMin { get; init; } = double.NaN;
    /// <summary><c>reward_max</c>.</summary>
    [JsonPropertyName("reward_max"), JsonPropertyOrder(5)]
    public double RewardMax { get; init; } = double.NaN;
    /// <summary>
    /// <c>reward_collapsed</c>: every reward of the epoch was the same (see <see cref="IsCollapsed"/>), e.g. all images
    /// black: the policy has likely collapsed. Null where the line lacks the field (written by an older version).
    /// </summary>
    [JsonPropertyName("reward_collapsed"), JsonPropertyOrder(6), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonConverter(typeof(LenientBoolConverter))]
    public bool? RewardCollapsed { get; init; }
    /// <summary><c>approx_kl</c> between the sampling and the updated policy.</summary>
    [JsonPropertyName("approx_kl"), JsonPropertyOrder(7)]
    public double ApproxKl { get; init; } = double.NaN;
    /// <summary><c>clipfrac</c>: fraction of importance ratios outside the clip range.</summary>
    [JsonPropertyName("clipfrac"), JsonPropertyOrder(8)]
    public double ClipFrac { get; init; } = double.NaN;
    /// <summary><c>loss</c>.</summary>
    [JsonPropertyName("loss"), JsonPropertyOrder(9)]
    public double Loss { get; init; } = double.NaN;
    /// <summary><c>first_ratio_max_dev</c>: largest |ratio - 1| of the epoch's first micro-batch (0 when sampling and training agree).</summary>
    [JsonPropertyName("first_ratio_max_dev"), JsonPropertyOrder(10)]
    public double FirstRatioMaxDev { get; init; } = double.NaN;
    /// <summary><c>samples</c>: samples drawn.</summary>
    [JsonPropertyName("samples"), JsonPropertyOrder(11)]
    public double Samples { get; init; } = double.NaN;
    /// <summary><c>samples_trained</c>: samples the update used.</summary>
    [JsonPropertyName("samples_trained"), JsonPropertyOrder(12)]
    public double SamplesTrained { get; init; } = double.NaN;
    /// <summary><c>nonfinite_rewards</c>: samples dropped for a NaN or infinite reward.</summary>
    [JsonPropertyName("nonfinite_rewards"), JsonPropertyOrder(13)]
    public double NonfiniteRewards { get; init; } = double.NaN;
    /// <summary><c>optimizer_steps</c>.</summary>
    [JsonPropertyName("optimizer_steps"), JsonPropertyOrder(14)]
    public double OptimizerSteps { get; init; } = double.NaN;
    /// <summary><c>skipped_steps</c>: optimizer steps skipped because their loss or gradients were not finite (any precision).</summary>
    [JsonPropertyName("skipped_steps"), JsonPropertyOrder(15)]
    public double SkippedSteps { get; init; } = double.NaN;
    /// <summary><c>loss_scale</c> (1 without loss scaling).</summary>
    [JsonPropertyName("loss_scale"), JsonPropertyOrder(16)]
    public double LossScale { get; init; } = double.NaN;
    /// <summary><c>learning_rate</c>.</summary>
    [JsonPropertyName("learning_rate"), JsonPropertyOrder(17)]
    public double LearningRate { get; init; } = double.NaN;
    /// <summary><c>sampling_s</c>: seconds spent sampling.</summary>
    [JsonPropertyName("sampling_s"), JsonPropertyOrder(18)]
    public double SamplingSeconds { get; init; } = double.NaN;
    /// <summary><c>reward_s</c>: seconds spent computing rewards.</summary>
    [JsonPropertyName("reward_s"), JsonPropertyOrder(19)]
    public double RewardSeconds { get; init; } = double.NaN;
    /// <summary><c>training_s</c>: seconds spent in the policy update.</summary>
    [JsonPropertyName("training_s"), JsonPropertyOrder(20)]
    public double TrainingSeconds { get; init; } = double.NaN;
    /// <summary><c>eval_images_s</c>: seconds spent on the fixed-seed image grid.</summary>
    [JsonPropertyName("eval_images_s"), JsonPropertyOrder(21)]
    public double EvalImagesSeconds { get; init; } = double.NaN;
    /// <summary><c>time</c>: when the epoch finished (written as a round-trip "O" string); null where absent or unparsable.</summary>
    [JsonPropertyName("time"), JsonPropertyOrder(22), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonConverter(typeof(RoundTripTimeConverter))]
    public DateTimeOffset? Time { get; init; }

    /// <summary><c>kl_mean</c>: mean KL to the base model over the trained steps (only with <c>train.kl_coef</c> &gt; 0); NaN where absent.</summary>
    [JsonIgnore]
    public double KlMean { get => KlMeanOrNull ?? double.NaN; init => KlMeanOrNull = value; }

    /// <summary><c>kl_mean</c> as written: only where set.</summary>
    [JsonInclude, JsonPropertyName("kl_mean"), JsonPropertyOrder(23), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    internal double? KlMeanOrNull { get; init; }

    /// <summary>
    /// The line's other fields, in line order after the named ones: <c>reward_NAME_mean</c> (the components of a
    /// weighted reward), <c>watch_NAME_mean</c> (watched rewards), <c>prompt_rewards</c>, the advantages' counts
    /// (GRPO's <c>groups</c>, <c>zero_std_groups</c>) and any field this version does not name.
    /// </summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement> OtherFields { get; init; } = new(StringComparer.Ordinal);

    /// <summary><c>groups</c>: prompt groups of the epoch (GRPO); NaN where absent.</summary>
    [JsonIgnore]
    public double Groups => OtherNumber("groups");
    /// <summary><c>zero_std_groups</c>: groups whose rewards were all equal, which add no policy gradient (GRPO); NaN where absent.</summary>
    [JsonIgnore]
    public double ZeroStdGroups => OtherNumber("zero_std_groups");

    /// <summary><c>reward_NAME_mean</c>: the mean of each component of a weighted reward, by NAME.</summary>
    [JsonIgnore]
    public IReadOnlyDictionary<string, double> RewardComponentMeans => Means(RewardPrefix);
    /// <summary><c>watch_NAME_mean</c>: the mean of each watched (logged, not optimised) reward, by NAME.</summary>
    [JsonIgnore]
    public IReadOnlyDictionary<string, double> WatchRewardMeans => Means(WatchPrefix);

    /// <summary>
    /// <c>prompt_rewards</c> (<c>{"a cat": {"mean": 1.2, "n": 4}, ...}</c>); empty where absent.
    /// </summary>
    /// <exception cref="FormatException">The field is present but not shaped like that (read lazily: a report shows the rest).</exception>
    [JsonIgnore]
    public IReadOnlyDictionary<string, PromptReward> PromptRewards => ParsePromptRewards();

    /// <summary>
    /// Every field of the line, as written to (or read from) <c>metrics.jsonl</c>: numbers (and "NaN", "Infinity",
    /// "-Infinity") as <see cref="double"/>, strings, booleans, null, arrays as lists, objects as dictionaries.
    /// </summary>
    [JsonIgnore]
    public IReadOnlyDictionary<string, object?> Values => ValuesCache.GetValue(this, m => m.ToValues());

    /// <summary>Where the line came from (file and line, or "epoch N" when built in memory), for error messages.</summary>
    [JsonIgnore]
    public string Source { get; init; } = "";

    /// <summary>The numeric field <paramref name="key"/> of <see cref="Values"/>, or NaN where it is missing or not a number.</summary>
    public double this[string key] => TryGetNumber(key, out var v) ? v : double.NaN;

    /// <summary>Whether <paramref name="key"/> is present and numeric (NaN counts as numeric).</summary>
    public bool TryGetNumber(string key, out double value)
    {
        if (Values.TryGetValue(key, out var o) && o is double d)
        {
            value = d;
            return true;
        }
        value = double.NaN;
        return false;
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

    /// <summary>A line read without <c>epoch</c> is malformed (the property is not required to System.Text.Json, so that the message can say so).</summary>
    void IJsonOnDeserialized.OnDeserialized()
    {
        if (!_hasEpoch) throw new BadEpochException("nothing");
    }

    private const string WatchPrefix = "watch_";
    private const string RewardPrefix = "reward_";
    private const string MeanSuffix = "_mean";

    private static readonly ConditionalWeakTable<EpochMetrics, IReadOnlyDictionary<string, object?>> ValuesCache = new();

    private double OtherNumber(string key) => OtherFields.TryGetValue(key, out var e) && AsNumber(e) is { } d ? d : double.NaN;

    private Dictionary<string, double> Means(string prefix)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (key, value) in OtherFields)
        {
            if (key.Length <= prefix.Length + MeanSuffix.Length || !key.StartsWith(prefix, StringComparison.Ordinal)
                || !key.EndsWith(MeanSuffix, StringComparison.Ordinal) || AsNumber(value) is not { } v) continue;
            // reward_NAME_mean is a component, unless it is watch_..._mean (which starts with "watch_", not "reward_").
            result[key[prefix.Length..^MeanSuffix.Length]] = v;
        }
        return result;
    }

    private Dictionary<string, PromptReward> ParsePromptRewards()
    {
        var result = new Dictionary<string, PromptReward>(StringComparer.Ordinal);
        if (!OtherFields.TryGetValue("prompt_rewards", out var o) || o.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return result;
        if (o.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"{Source}: field 'prompt_rewards' must be an object of prompt -> {{\"mean\", \"n\"}}, got {Describe(o)}");
        }
        foreach (var p in o.EnumerateObject())
        {
            var stats = p.Value;
            if (stats.ValueKind != JsonValueKind.Object || !stats.TryGetProperty("mean", out var m) || AsNumber(m) is not { } mean)
            {
                throw new FormatException($"{Source}: field 'prompt_rewards' entry '{p.Name}' must be an object with a numeric \"mean\", got {Describe(stats)}");
            }
            int n = stats.TryGetProperty("n", out var c) && AsNumber(c) is { } cd && double.IsFinite(cd) ? (int)cd : 0;
            result[p.Name] = new PromptReward(mean, n);
        }
        return result;
    }

    private Dictionary<string, object?> ToValues()
    {
        var element = JsonSerializer.SerializeToElement(this, MetricsLog.Options);
        return (Dictionary<string, object?>)Convert(element)!;
    }

    private static object? Convert(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => Convert(p.Value)),
        JsonValueKind.Array => e.EnumerateArray().Select(Convert).ToList(),
        JsonValueKind.Number => e.GetDouble(),
        JsonValueKind.String => e.GetString() switch
        {
            "NaN" => double.NaN,
            "Infinity" => double.PositiveInfinity,
            "-Infinity" => double.NegativeInfinity,
            var s => s,
        },
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };

    /// <summary>A number as written to metrics.jsonl: a JSON number, or "NaN", "Infinity", "-Infinity"; null otherwise.</summary>
    internal static double? AsNumber(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Number => e.TryGetDouble(out var d) ? d : null,
        JsonValueKind.String => e.GetString() switch
        {
            "NaN" => double.NaN,
            "Infinity" => double.PositiveInfinity,
            "-Infinity" => double.NegativeInfinity,
            _ => null,
        },
        _ => null,
    };

    private static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => "nothing",
        JsonValueKind.String => $"the string \"{e.GetString()}\"",
        JsonValueKind.Number => e.GetRawText(),
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        _ => e.GetRawText(),
    };

    /// <summary><c>epoch</c>: a non-negative whole number (written as an integer).</summary>
    private sealed class EpochConverter : JsonConverter<int>
    {
        public override int Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var d)
                && double.IsFinite(d) && d == Math.Floor(d) && d >= 0 && d <= int.MaxValue)
            {
                return (int)d;
            }
            var got = reader.TokenType switch
            {
                JsonTokenType.Number or JsonTokenType.True or JsonTokenType.False => System.Text.Encoding.UTF8.GetString(reader.ValueSpan),
                JsonTokenType.String => $"the string \"{reader.GetString()}\"",
                JsonTokenType.Null => "nothing",
                _ => reader.TokenType.ToString(),
            };
            throw new BadEpochException(got);
        }

        public override void Write(Utf8JsonWriter writer, int value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
    }

    /// <summary><c>reward_collapsed</c>: true or false; anything else reads as absent (null).</summary>
    private sealed class LenientBoolConverter : JsonConverter<bool?>
    {
        public override bool? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.True: return true;
                case JsonTokenType.False: return false;
                default: reader.Skip(); return null;
            }
        }

        public override void Write(Utf8JsonWriter writer, bool? value, JsonSerializerOptions options)
        {
            if (value is { } b) writer.WriteBooleanValue(b);
            else writer.WriteNullValue();
        }
    }

    /// <summary><c>time</c>: written as <c>ToString("O")</c>; a string that does not parse (or no string) reads as null.</summary>
    private sealed class RoundTripTimeConverter : JsonConverter<DateTimeOffset?>
    {
        public override DateTimeOffset? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType == JsonTokenType.String
                && DateTimeOffset.TryParse(reader.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
            {
                return time;
            }
            reader.Skip();
            return null;
        }

        public override void Write(Utf8JsonWriter writer, DateTimeOffset? value, JsonSerializerOptions options)
        {
            if (value is { } t) writer.WriteStringValue(t.ToString("O", CultureInfo.InvariantCulture));
            else writer.WriteNullValue();
        }
    }
}
