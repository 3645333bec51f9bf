using System.Globalization;

namespace Ddpo.Reporting;

/// <summary>The mean reward of one prompt in one epoch and how many samples it averages.</summary>
/// <param name="Mean">Mean reward (NaN where the trainer logged NaN).</param>
/// <param name="Count">Number of samples of the prompt in the epoch.</param>
public readonly record struct PromptReward(double Mean, int Count);

/// <summary>One line of <c>metrics.jsonl</c>: the metrics the trainer logged for one epoch.</summary>
public sealed class EpochMetrics
{
    private IReadOnlyDictionary<string, PromptReward>? _promptRewards;

    /// <summary>Wraps a parsed metrics line; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="FormatException">The line has no whole-number <c>epoch</c>.</exception>
    public EpochMetrics(IReadOnlyDictionary<string, object?> values, string source)
    {
        Values = values;
        Source = source;
        if (!values.TryGetValue("epoch", out var e) || e is not double d || !double.IsFinite(d) || d != Math.Floor(d) || d < 0 || d > int.MaxValue)
        {
            throw new FormatException($"{source}: field 'epoch' must be a non-negative whole number, got {Describe(e)}");
        }
        Epoch = (int)d;
    }

    /// <summary>The epoch number (field <c>epoch</c>).</summary>
    public int Epoch { get; }

    /// <summary>Every field of the line as read by <see cref="Training.MetricsReader"/>.</summary>
    public IReadOnlyDictionary<string, object?> Values { get; }

    /// <summary>Where the line came from (file and record number), for error messages.</summary>
    public string Source { get; }

    /// <summary>The numeric field <paramref name="key"/>, or NaN where it is missing or not a number.</summary>
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

    /// <summary>The field <c>time</c> parsed as an ISO-8601 timestamp, or null where absent or unparsable.</summary>
    public DateTimeOffset? Time =>
        Values.TryGetValue("time", out var t) && t is string s
        && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)
            ? time : null;

    /// <summary>
    /// The field <c>prompt_rewards</c> (<c>{"a cat": {"mean": 1.2, "n": 4}, ...}</c>); empty where absent.
    /// </summary>
    /// <exception cref="FormatException">The field is present but not shaped like that.</exception>
    public IReadOnlyDictionary<string, PromptReward> PromptRewards => _promptRewards ??= ParsePromptRewards();

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
            if (stats is not IReadOnlyDictionary<string, object?> s || !s.TryGetValue("mean", out var m) || m is not double mean)
            {
                throw new FormatException($"{Source}: field 'prompt_rewards' entry '{prompt}' must be an object with a numeric \"mean\", got {Describe(stats)}");
            }
            int n = s.TryGetValue("n", out var c) && c is double cd && double.IsFinite(cd) ? (int)cd : 0;
            result[prompt] = new PromptReward(mean, n);
        }
        return result;
    }

    private static string Describe(object? o) => o switch
    {
        null => "nothing",
        string s => $"the string \"{s}\"",
        double d => d.ToString(CultureInfo.InvariantCulture),
        _ => o.GetType().Name,
    };
}
