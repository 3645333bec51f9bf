using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Prompts;

namespace Ddpo.Rewards.Remote;

/// <summary>Settings of a <see cref="GenevalReward"/>.</summary>
/// <param name="Url">The server URL requests are posted to, as is (Flow-GRPO: <c>http://127.0.0.1:18085</c>, its root).</param>
/// <param name="BatchSize">Images per request (Flow-GRPO: 64).</param>
/// <param name="OnlyStrict">Sent as <c>only_strict</c> (Flow-GRPO trains with true).</param>
/// <param name="Retry">Timeouts and retries.</param>
internal sealed record GenevalRewardOptions(string Url, int BatchSize, bool OnlyStrict, HttpRetryOptions Retry);

/// <summary>
/// GenEval as a reward (Flow-GRPO <c>geneval_score</c>, flow_grpo/rewards.py at fc412d2, and yifan123/reward-server's
/// <c>app_geneval.py</c>): each request is <c>POST {url}</c> with
/// <c>{"images": [base64 JPEG], "meta_datas": [{"tag": ..., "include": [...], "prompt": ..., ...}], "only_strict": true}</c>
/// and the answer <c>{"scores": [...], "rewards": [...], "strict_rewards": [...], "group_rewards": {"TAG": [...]},
/// "group_strict_rewards": {"TAG": [...]}}</c>, every list one number per image. The reward is <c>scores</c> (what
/// Flow-GRPO optimises); the details are Flow-GRPO's names: <c>accuracy</c> (<c>rewards</c>), <c>strict_accuracy</c>
/// (<c>strict_rewards</c>), <c>TAG_accuracy</c> and <c>TAG_strict_accuracy</c> (the group lists, where the server's
/// -10 for "not of this tag" becomes NaN). The fields and their order are Flow-GRPO's; the encoding is JSON with
/// base64 images instead of Python pickle, which would let a server run code in the trainer.
/// Images are JPEG at quality 75, the bytes PIL's <c>img.save(buffer, format="JPEG")</c> writes (Flow-GRPO's default).
/// </summary>
internal sealed class GenevalReward : IRewardFunction, IPromptRequirements, IDisposable
{
    /// <summary>PIL's default JPEG quality, which Flow-GRPO's <c>img.save(buffer, format="JPEG")</c> uses.</summary>
    public const int JpegQuality = 75;

    /// <summary>The value reward-server writes in a group list for an image not of that tag.</summary>
    public const double NotInGroup = -10.0;

    /// <summary>The metadata fields GenEval's evaluation needs.</summary>
    public static readonly string[] RequiredFields = ["tag", "include"];

    private readonly RetryingJsonClient _client;

    /// <summary>Creates the client; <paramref name="http"/> is optional (tests, shared handlers).</summary>
    public GenevalReward(GenevalRewardOptions options, HttpClient? http = null, Action<string>? log = null)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "batch size must be >= 1");
        _client = new RetryingJsonClient(options.Retry, http, log);
    }

    /// <summary>The settings.</summary>
    public GenevalRewardOptions Options { get; }

    /// <inheritdoc/>
    public string Name => RewardNames.Geneval;

    /// <summary>The parsed answer of one request.</summary>
    public sealed record Answer(float[] Scores, float[] Rewards, float[] StrictRewards,
        IReadOnlyDictionary<string, float[]> GroupRewards, IReadOnlyDictionary<string, float[]> GroupStrictRewards);

    /// <inheritdoc/>
    public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        var records = new JsonObject[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            records[i] = Record(batch.Prompts[i], batch.Metadata[i]);
            if (Problem(records[i]) is { } problem) throw new ConfigException($"{Name}: prompt '{batch.Prompts[i]}': {problem}");
        }
        var files = EncodeJpeg(batch.Images);
        var scores = new float[batch.Count];
        var details = new Dictionary<string, float[]>();
        void Put(string key, float[] values, int start)
        {
            if (!details.TryGetValue(key, out var all))
            {
                all = new float[batch.Count];
                Array.Fill(all, float.NaN);
                details[key] = all;
            }
            Array.Copy(values, 0, all, start, values.Length);
        }
        for (int start = 0; start < batch.Count; start += Options.BatchSize)
        {
            int n = Math.Min(Options.BatchSize, batch.Count - start);
            var body = new JsonObject
            {
                ["images"] = new JsonArray(files.Skip(start).Take(n).Select(f => (JsonNode?)JsonValue.Create(Convert.ToBase64String(f))).ToArray()),
                ["meta_datas"] = new JsonArray(records.Skip(start).Take(n).Select(r => (JsonNode?)r.DeepClone()).ToArray()),
                ["only_strict"] = Options.OnlyStrict,
            };
            var a = await _client.SendAsync(HttpMethod.Post, Options.Url, body, bearerToken: null, json => Parse(json, n), ct).ConfigureAwait(false);
            Array.Copy(a.Scores, 0, scores, start, n);
            Put("accuracy", a.Rewards, start);
            Put("strict_accuracy", a.StrictRewards, start);
            foreach (var (tag, values) in a.GroupStrictRewards) Put($"{tag}_strict_accuracy", values, start);
            foreach (var (tag, values) in a.GroupRewards) Put($"{tag}_accuracy", values, start);
        }
        return new RewardResult(scores, details);
    }

    /// <summary>
    /// The <c>meta_datas</c> entry of one image: its metadata's JSON (<see cref="RecordMetadata.ToJson"/>) with
    /// <c>prompt</c> added when absent, as Flow-GRPO's <c>GenevalPromptDataset</c> passes the whole record.
    /// </summary>
    public static JsonObject Record(string prompt, IReadOnlyDictionary<string, string> metadata)
    {
        var o = RecordMetadata.ToJson(metadata);
        if (!o.ContainsKey(PromptRecordSource.PromptField)) o[PromptRecordSource.PromptField] = prompt;
        return o;
    }

    /// <summary>What a record lacks for GenEval (a string <c>tag</c> and an array <c>include</c>), or null.</summary>
    public static string? Problem(JsonObject record)
    {
        if (record["tag"] is not JsonValue tag || tag.GetValueKind() != JsonValueKind.String)
        {
            return "no GenEval \"tag\" (a string such as \"counting\") in its metadata";
        }
        if (record["include"] is not JsonArray)
        {
            return "no GenEval \"include\" (an array such as [{\"class\": \"cat\", \"count\": 2}]) in its metadata";
        }
        return null;
    }

    /// <summary>Reads the answer for <paramref name="count"/> images; <see cref="InvalidDataException"/> when it is not that.</summary>
    public static Answer Parse(JsonNode json, int count)
    {
        if (json is not JsonObject o) throw new InvalidDataException("expected a JSON object with \"scores\", \"rewards\" and \"strict_rewards\"");
        float[] List(string key) => o[key] is JsonArray a ? Numbers(a, key, count) : throw new InvalidDataException($"no \"{key}\" array");
        Dictionary<string, float[]> Groups(string key)
        {
            var result = new Dictionary<string, float[]>();
            if (o[key] is null) return result;
            if (o[key] is not JsonObject groups) throw new InvalidDataException($"\"{key}\" is not an object of arrays");
            foreach (var (tag, value) in groups)
            {
                if (value is not JsonArray a) throw new InvalidDataException($"{key}.{tag} is not an array");
                var values = Numbers(a, $"{key}.{tag}", count);
                for (int i = 0; i < values.Length; i++) if (values[i] == NotInGroup) values[i] = float.NaN;
                result[tag] = values;
            }
            return result;
        }
        return new Answer(List("scores"), List("rewards"), List("strict_rewards"), Groups("group_rewards"), Groups("group_strict_rewards"));
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

    private static byte[][] EncodeJpeg(TorchSharp.torch.Tensor images)
    {
        var rgb = JpegEncoding.ToRgbBytes(images);
        int b = (int)images.shape[0], h = (int)images.shape[2], w = (int)images.shape[3];
        int per = h * w * 3;
        var files = new byte[b][];
        Parallel.For(0, b, i => files[i] = JpegEncoding.Encode(rgb.AsSpan(i * per, per), w, h, JpegQuality));
        return files;
    }

    void IPromptRequirements.CheckPrompts(IEnumerable<PromptSample> prompts, string source)
    {
        foreach (var sample in prompts)
        {
            if (Problem(Record(sample.Prompt, sample.Metadata)) is { } problem)
            {
                throw new ConfigException($"{RewardNames.Geneval}: prompt '{sample.Prompt}' of {source}: {problem}. This reward needs " +
                    "GenEval prompt records: prompt_fn = \"file:PATH.jsonl\" with lines such as " +
                    "{\"prompt\": \"a photo of two cats\", \"tag\": \"counting\", \"include\": [{\"class\": \"cat\", \"count\": 2}]}");
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _client.Dispose();
}
