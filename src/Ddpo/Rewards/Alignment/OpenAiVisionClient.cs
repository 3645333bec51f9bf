using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Rewards.Remote;

namespace Ddpo.Rewards.Alignment;

/// <summary>Settings of an <see cref="OpenAiVisionClient"/>.</summary>
/// <param name="BaseUrl">The API root, e.g. <c>http://127.0.0.1:8000/v1</c> (requests go to <c>{BaseUrl}/chat/completions</c>).</param>
/// <param name="Model">The model name; empty = the first model listed by <c>GET {BaseUrl}/models</c>.</param>
/// <param name="ApiKey">Sent as <c>Authorization: Bearer</c> when not empty.</param>
/// <param name="MaxTokens">The longest answer.</param>
/// <param name="Temperature">Sampling temperature (0 = greedy).</param>
/// <param name="MaxConcurrency">Requests in flight at once.</param>
/// <param name="Retry">Timeouts and retries.</param>
public sealed record OpenAiVisionOptions(string BaseUrl, string Model, string? ApiKey, int MaxTokens, double Temperature,
    int MaxConcurrency, HttpRetryOptions Retry);

/// <summary>
/// Asks a vision-language model about images through the OpenAI-compatible chat-completions API
/// (vLLM, SGLang, llama.cpp's server, Ollama, hosted APIs): one user message with a text part and an
/// <c>image_url</c> part holding a <c>data:</c> URL. At most <see cref="OpenAiVisionOptions.MaxConcurrency"/>
/// requests are in flight; each is timed out and retried as <see cref="RetryingJsonClient"/> describes.
/// </summary>
public sealed class OpenAiVisionClient : IDisposable
{
    private readonly RetryingJsonClient _client;
    private readonly SemaphoreSlim _slots;
    private readonly string _root;
    private string? _model;

    /// <summary>Creates the client; <paramref name="http"/> is optional.</summary>
    public OpenAiVisionClient(OpenAiVisionOptions options, HttpClient? http = null, Action<string>? log = null)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.MaxConcurrency < 1) throw new ArgumentOutOfRangeException(nameof(options), options.MaxConcurrency, "max concurrency must be >= 1");
        _root = options.BaseUrl.TrimEnd('/');
        _client = new RetryingJsonClient(options.Retry, http, log);
        _slots = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        _model = string.IsNullOrEmpty(options.Model) ? null : options.Model;
    }

    /// <summary>The settings.</summary>
    public OpenAiVisionOptions Options { get; }

    /// <summary>The chat-completions URL.</summary>
    public string CompletionsUrl => _root + "/chat/completions";

    /// <summary>The model asked: the configured one, or the first the server lists.</summary>
    public async Task<string> ResolveModelAsync(CancellationToken ct)
    {
        if (_model is not null) return _model;
        var url = _root + "/models";
        var id = await _client.SendAsync(HttpMethod.Get, url, null, Options.ApiKey, json =>
            (json["data"] as JsonArray)?.Select(m => m?["id"]?.GetValue<string>()).FirstOrDefault(s => !string.IsNullOrEmpty(s))
            ?? throw new InvalidDataException("no model in \"data\" (set reward.vlm.model)"), ct).ConfigureAwait(false);
        return _model = id;
    }

    /// <summary>
    /// The model's answer to <paramref name="question"/> about an encoded image (<paramref name="mimeType"/>
    /// <c>image/png</c> or <c>image/jpeg</c>). An answer without text is returned as <c>""</c>. The text part comes
    /// first, or the image part when <paramref name="imageFirst"/> (templates written for an image-then-text message).
    /// </summary>
    public async Task<string> AskAsync(byte[] image, string mimeType, string question, CancellationToken ct, bool imageFirst = false)
    {
        var model = await ResolveModelAsync(ct).ConfigureAwait(false);
        var body = new JsonObject
        {
            ["model"] = model,
            ["max_tokens"] = Options.MaxTokens,
            ["temperature"] = Options.Temperature,
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = imageFirst ? new JsonArray(ImagePart(image, mimeType), TextPart(question)) : new JsonArray(TextPart(question), ImagePart(image, mimeType)),
            }),
        };
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await _client.SendAsync(HttpMethod.Post, CompletionsUrl, body, Options.ApiKey, ParseAnswer, ct).ConfigureAwait(false);
        }
        finally
        {
            _slots.Release();
        }
    }

    private static JsonObject TextPart(string text) => new() { ["type"] = "text", ["text"] = text };

    private static JsonObject ImagePart(byte[] image, string mimeType) => new()
    {
        ["type"] = "image_url",
        ["image_url"] = new JsonObject { ["url"] = $"data:{mimeType};base64,{Convert.ToBase64String(image)}" },
    };

    /// <summary>
    /// The text of <c>choices[0].message.content</c> (a string, or an array of <c>{"type": "text", "text": ...}</c>
    /// parts); <c>""</c> when it is null. Throws <see cref="InvalidDataException"/> when there is no choice.
    /// </summary>
    public static string ParseAnswer(JsonNode json)
    {
        if (json["choices"] is not JsonArray choices || choices.Count == 0)
        {
            var error = json["error"]?.ToJsonString();
            throw new InvalidDataException(error is null ? "no \"choices\" in the answer" : $"the server reported an error: {error}");
        }
        var content = choices[0]?["message"]?["content"];
        return content switch
        {
            null => "",
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            JsonArray parts => string.Concat(parts.Select(p => p?["text"] is JsonValue t && t.GetValueKind() == JsonValueKind.String ? t.GetValue<string>() : "")),
            _ => throw new InvalidDataException($"choices[0].message.content is neither text nor parts: {content.ToJsonString()}"),
        };
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _client.Dispose();
        _slots.Dispose();
    }
}
