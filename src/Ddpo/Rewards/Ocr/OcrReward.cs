using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Prompts;
using Ddpo.Rewards.Remote;

namespace Ddpo.Rewards.Ocr;

/// <summary>Settings of an <see cref="OcrReward"/>.</summary>
/// <param name="BaseUrl">The OCR server's base URL; requests go to <c>POST {BaseUrl}/ocr</c>.</param>
/// <param name="BatchSize">Images per request.</param>
/// <param name="Format">How images are encoded.</param>
/// <param name="Retry">Timeouts and retries.</param>
internal sealed record OcrRewardOptions(string BaseUrl, int BatchSize, RewardImageFormat Format, HttpRetryOptions Retry);

/// <summary>
/// Flow-GRPO's text-rendering reward (<c>ocr_score</c>): an OCR server reads the text of each image and the reward is
/// <see cref="OcrTarget.Score"/> of it against the prompt's quoted text, in [0, 1]. The protocol is JSON:
/// <c>POST {base_url}/ocr</c> with <c>{"images": [base64 PNG or JPEG], "image_format": "png"}</c>, answered by
/// <c>{"texts": ["...", ...]}</c>, one recognised text per image (its lines joined, as Flow-GRPO joins PaddleOCR's;
/// <c>null</c> or <c>""</c> when nothing was read, which scores 0 as Flow-GRPO's failed OCR does). Details:
/// <c>edit_distance</c> (the capped distance). A prompt without quoted text is an error naming it, before sampling
/// (<see cref="IPromptRequirements"/>) and when scoring.
/// </summary>
internal sealed class OcrReward : IRewardFunction, IPromptRequirements, IDisposable
{
    private readonly RetryingJsonClient _client;
    private readonly string _url;

    /// <summary>Creates the client; <paramref name="http"/> is optional (tests, shared handlers).</summary>
    public OcrReward(OcrRewardOptions options, HttpClient? http = null, Action<string>? log = null)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "batch size must be >= 1");
        _url = options.BaseUrl.TrimEnd('/') + "/ocr";
        _client = new RetryingJsonClient(options.Retry, http, log);
    }

    /// <summary>The settings.</summary>
    public OcrRewardOptions Options { get; }

    /// <summary>The texts the server read in the last batch scored (for logs and inspection).</summary>
    public IReadOnlyList<string> LastTexts { get; private set; } = [];

    /// <inheritdoc/>
    public string Name => RewardNames.Ocr;

    /// <inheritdoc/>
    public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        // Targets first: a prompt without quoted text fails before any request.
        var targets = batch.Prompts.Select(OcrTarget.From).ToArray();
        var files = RewardImageEncoding.EncodeAll(batch.Images, Options.Format);
        var texts = new string[batch.Count];
        for (int start = 0; start < batch.Count; start += Options.BatchSize)
        {
            int n = Math.Min(Options.BatchSize, batch.Count - start);
            var body = new JsonObject
            {
                ["images"] = new JsonArray(files.Skip(start).Take(n).Select(f => (JsonNode?)JsonValue.Create(Convert.ToBase64String(f))).ToArray()),
                ["image_format"] = Options.Format == RewardImageFormat.Png ? "png" : "jpeg",
            };
            var read = await _client.SendAsync(HttpMethod.Post, _url, body, bearerToken: null, json => ParseTexts(json, n), ct).ConfigureAwait(false);
            Array.Copy(read, 0, texts, start, n);
        }
        LastTexts = texts;
        var rewards = new float[batch.Count];
        var distances = new float[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            distances[i] = OcrTarget.Distance(texts[i], targets[i]);
            rewards[i] = (float)OcrTarget.Score(texts[i], targets[i]);
        }
        return new RewardResult(rewards, new Dictionary<string, float[]> { ["edit_distance"] = distances });
    }

    /// <summary>Reads <c>{"texts": [...]}</c> for <paramref name="count"/> images; <c>null</c> entries are <c>""</c>.</summary>
    public static string[] ParseTexts(JsonNode json, int count)
    {
        if (json is not JsonObject o) throw new InvalidDataException("expected a JSON object with \"texts\"");
        if (o["texts"] is not JsonArray texts) throw new InvalidDataException("no \"texts\" array");
        if (texts.Count != count) throw new InvalidDataException($"texts has {texts.Count} values for {count} images");
        var result = new string[count];
        for (int i = 0; i < count; i++)
        {
            var v = texts[i];
            if (v is null) { result[i] = ""; continue; }
            if (v.GetValueKind() != JsonValueKind.String) throw new InvalidDataException($"texts[{i}] is not a string or null: {v.ToJsonString()}");
            result[i] = v.GetValue<string>();
        }
        return result;
    }

    void IPromptRequirements.CheckPrompts(IEnumerable<PromptSample> prompts, string source)
    {
        foreach (var sample in prompts)
        {
            if (OcrTarget.TryFrom(sample.Prompt, out var problem) is null)
            {
                throw new ConfigException($"{RewardNames.Ocr}: prompt '{sample.Prompt}' of {source}: {problem}. " +
                    "This reward needs prompts that quote the text to render, e.g. 'a sign that says \"OPEN\"'");
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _client.Dispose();
}
