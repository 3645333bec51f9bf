using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ddpo.Training;

/// <summary>Reward statistics of one prompt's buffer.</summary>
internal sealed record PromptStats(double Mean, double Std, int Count);

/// <summary>
/// Per-prompt reward normalisation, as ddpo-pytorch's <c>PerPromptStatTracker</c>: each prompt keeps
/// its last <c>buffer_size</c> rewards across epochs; the new rewards are pushed first, then a prompt
/// with fewer than <c>min_count</c> remembered rewards is normalised by the whole batch's mean and std,
/// otherwise by its buffer's (population std, plus 1e-6).
/// </summary>
internal sealed class PerPromptStatTracker
{
    /// <summary>Added to the standard deviation before dividing.</summary>
    public const double StdEpsilon = 1e-6;

    private readonly Dictionary<string, Queue<float>> _buffers = new(StringComparer.Ordinal);

    /// <summary>A tracker remembering <paramref name="bufferSize"/> rewards per prompt.</summary>
    public PerPromptStatTracker(int bufferSize, int minCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bufferSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(minCount);
        BufferSize = bufferSize;
        MinCount = minCount;
    }

    /// <summary>Rewards remembered per prompt.</summary>
    public int BufferSize { get; }

    /// <summary>Buffered rewards needed before a prompt's own statistics are used.</summary>
    public int MinCount { get; }

    /// <summary>Pushes the rewards into their prompts' buffers and returns the advantages, in input order.</summary>
    public float[] Update(IReadOnlyList<string> prompts, IReadOnlyList<float> rewards)
    {
        if (prompts.Count != rewards.Count)
        {
            throw new ArgumentException($"{prompts.Count} prompts but {rewards.Count} rewards");
        }
        for (int i = 0; i < rewards.Count; i++)
        {
            if (!float.IsFinite(rewards[i]))
            {
                throw new ArgumentException($"reward {i} ('{prompts[i]}') is {rewards[i]}; drop non-finite rewards first (RewardChecks.Finite)");
            }
        }
        var (batchMean, batchStd) = MeanStd(rewards);
        var advantages = new float[rewards.Count];
        foreach (var group in Enumerable.Range(0, prompts.Count).GroupBy(i => prompts[i], StringComparer.Ordinal))
        {
            if (!_buffers.TryGetValue(group.Key, out var buffer))
            {
                buffer = new Queue<float>(BufferSize);
                _buffers[group.Key] = buffer;
            }
            foreach (int i in group)
            {
                if (buffer.Count == BufferSize) buffer.Dequeue();
                buffer.Enqueue(rewards[i]);
            }
            var (mean, std) = buffer.Count < MinCount ? (batchMean, batchStd) : MeanStd(buffer.ToArray());
            foreach (int i in group)
            {
                advantages[i] = (float)((rewards[i] - mean) / (std + StdEpsilon));
            }
        }
        return advantages;
    }

    /// <summary>Mean, std and count of every prompt's buffer.</summary>
    public IReadOnlyDictionary<string, PromptStats> GetStats() =>
        _buffers.ToDictionary(kv => kv.Key, kv =>
        {
            var (mean, std) = MeanStd(kv.Value.ToArray());
            return new PromptStats(mean, std, kv.Value.Count);
        }, StringComparer.Ordinal);

    /// <summary>Forgets every buffer.</summary>
    public void Clear() => _buffers.Clear();

    /// <summary>The buffers and settings as JSON, for checkpoints.</summary>
    public string ToJson()
    {
        var buffers = new JsonObject();
        foreach (var (prompt, buffer) in _buffers.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            buffers[prompt] = new JsonArray(buffer.Select(r => (JsonNode)JsonValue.Create(r)).ToArray());
        }
        return new JsonObject
        {
            ["buffer_size"] = BufferSize,
            ["min_count"] = MinCount,
            ["buffers"] = buffers,
        }.ToJsonString();
    }

    /// <summary>Restores a tracker written by <see cref="ToJson"/>.</summary>
    public static PerPromptStatTracker FromJson(string json)
    {
        try
        {
            var root = Ddpo.Models.Loading.StrictJson.Parse(json)?.AsObject() ?? throw new FormatException("stat tracker state: expected a JSON object");
            var tracker = new PerPromptStatTracker(
                root["buffer_size"]?.GetValue<int>() ?? throw new FormatException("stat tracker state: missing buffer_size"),
                root["min_count"]?.GetValue<int>() ?? throw new FormatException("stat tracker state: missing min_count"));
            foreach (var (prompt, values) in root["buffers"]?.AsObject() ?? new JsonObject())
            {
                var array = values?.AsArray() ?? throw new FormatException($"stat tracker state: buffer of '{prompt}' is not an array");
                var queue = new Queue<float>(tracker.BufferSize);
                foreach (var v in array.TakeLast(tracker.BufferSize)) queue.Enqueue(v?.GetValue<float>() ?? throw new FormatException($"stat tracker state: buffer of '{prompt}' holds null, expected numbers"));
                tracker._buffers[prompt] = queue;
            }
            return tracker;
        }
        // ArgumentException: a buffer size or minimum count out of range, or a prompt repeated.
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException)
        {
            throw new FormatException($"stat tracker state: malformed JSON ({e.Message})", e);
        }
    }

    internal static (double Mean, double Std) MeanStd(IReadOnlyList<float> values)
    {
        if (values.Count == 0) return (0, 0);
        double mean = 0;
        foreach (var v in values) mean += v;
        mean /= values.Count;
        double var = 0;
        foreach (var v in values) var += (v - mean) * (v - mean);
        return (mean, Math.Sqrt(var / values.Count));
    }
}
