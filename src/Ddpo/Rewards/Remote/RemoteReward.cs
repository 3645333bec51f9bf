using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ddpo.Rewards.Remote;

/// <summary>Settings of a <see cref="RemoteReward"/>.</summary>
/// <param name="BaseUrl">The server's base URL; requests go to <c>POST {BaseUrl}/score</c>.</param>
/// <param name="BatchSize">Images per request.</param>
/// <param name="Format">How images are encoded.</param>
/// <param name="Retry">Timeouts and retries.</param>
public sealed record RemoteRewardOptions(string BaseUrl, int BatchSize, RewardImageFormat Format, HttpRetryOptions Retry);

/// <summary>
/// A reward computed by a server speaking the JSON reward protocol (see docs/rewards.md): <c>POST {base_url}/score</c>
/// with <c>{"images": [base64 PNG or JPEG], "image_format": "png", "prompts": [...], "metadata": [{...}]}</c>, answered by
/// <c>{"rewards": [...], "details": {"name": [...]}}</c> with one reward per image (<c>null</c> means "no reward",
/// NaN, and the sample is dropped). JSON only: nothing the server sends is executed.
/// </summary>
public sealed class RemoteReward : IRewardFunction, IDisposable
{
    /// <summary>The name this reward is registered under.</summary>
    public const string RegisteredName = "remote";

    private readonly RetryingJsonClient _client;
    private readonly string _url;

    /// <summary>Creates the client; <paramref name="http"/> is optional (tests, shared handlers).</summary>
    public RemoteReward(RemoteRewardOptions options, HttpClient? http = null, Action<string>? log = null)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "batch size must be >= 1");
        _url = options.BaseUrl.TrimEnd('/') + "/score";
        _client = new RetryingJsonClient(options.Retry, http, log);
    }

    /// <summary>The settings.</summary>
    public RemoteRewardOptions Options { get; }

    /// <inheritdoc/>
    public string Name => RegisteredName;

    /// <inheritdoc/>
    public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        var files = RewardImageEncoding.EncodeAll(batch.Images, Options.Format);
        var rewards = new float[batch.Count];
        var details = new Dictionary<string, float[]>();
        for (int start = 0; start < batch.Count; start += Options.BatchSize)
        {
            int n = Math.Min(Options.BatchSize, batch.Count - start);
            var body = new JsonObject
            {
                ["images"] = new JsonArray(files.Skip(start).Take(n).Select(f => (JsonNode?)JsonValue.Create(Convert.ToBase64String(f))).ToArray()),
                ["image_format"] = Options.Format == RewardImageFormat.Png ? "png" : "jpeg",
                ["prompts"] = new JsonArray(batch.Prompts.Skip(start).Take(n).Select(p => (JsonNode?)JsonValue.Create(p)).ToArray()),
                ["metadata"] = new JsonArray(batch.Metadata.Skip(start).Take(n).Select(m => (JsonNode?)ToJson(m)).ToArray()),
            };
            var (r, d) = await _client.SendAsync(HttpMethod.Post, _url, body, bearerToken: null, json => Parse(json, n), ct).ConfigureAwait(false);
            Array.Copy(r, 0, rewards, start, n);
            foreach (var (key, values) in d)
            {
                if (!details.TryGetValue(key, out var all))
                {
                    all = new float[batch.Count];
                    Array.Fill(all, float.NaN);
                    details[key] = all;
                }
                Array.Copy(values, 0, all, start, n);
            }
        }
        return new RewardResult(rewards, details);
    }

    private static JsonObject ToJson(IReadOnlyDictionary<string, string> metadata)
    {
        var o = new JsonObject();
        foreach (var (k, v) in metadata) o[k] = v;
        return o;
    }

    /// <summary>Reads <c>{"rewards": [...], "details": {...}}</c>; throws <see cref="InvalidDataException"/> when it is not that, for <paramref name="count"/> images.</summary>
    public static (float[] Rewards, Dictionary<string, float[]> Details) Parse(JsonNode json, int count)
    {
        if (json is not JsonObject o) throw new InvalidDataException("expected a JSON object with \"rewards\"");
        if (o["rewards"] is not JsonArray rewards) throw new InvalidDataException("no \"rewards\" array");
        var r = Numbers(rewards, "rewards", count);
        var details = new Dictionary<string, float[]>();
        if (o["details"] is JsonObject d)
        {
            foreach (var (key, value) in d)
            {
                if (value is not JsonArray a) throw new InvalidDataException($"details.{key} is not an array");
                details[key] = Numbers(a, $"details.{key}", count);
            }
        }
        else if (o["details"] is not null)
        {
            throw new InvalidDataException("\"details\" is not an object");
        }
        return (r, details);
    }

    private static float[] Numbers(JsonArray array, string what, int count)
    {
        if (array.Count != count) throw new InvalidDataException($"{what} has {array.Count} values for {count} images");
        var result = new float[count];
        for (int i = 0; i < count; i++)
        {
            var v = array[i];
            if (v is null) { result[i] = float.NaN; continue; }
            if (v.GetValueKind() != JsonValueKind.Number) throw new InvalidDataException($"{what}[{i}] is not a number or null: {v.ToJsonString()}");
            result[i] = (float)v.GetValue<double>();
        }
        return result;
    }

    /// <inheritdoc/>
    public void Dispose() => _client.Dispose();
}
