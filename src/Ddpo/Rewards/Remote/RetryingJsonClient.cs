using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ddpo.Rewards.Remote;

/// <summary>
/// Sends JSON requests with a per-attempt timeout and retries with exponential backoff. Retried:
/// connection failures, timeouts, HTTP 408, 429 and 5xx, and answers that are not the expected JSON.
/// Other HTTP errors (400, 401, 404, ...) fail at once. Every failure is a <see cref="RewardServerException"/>
/// naming the URL and what came back (status and an excerpt of the body, or the connection error).
/// </summary>
internal sealed class RetryingJsonClient : IDisposable
{
    private const int ExcerptLength = 300;
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    /// <summary>Uses <paramref name="http"/> (not disposed) or a new client; per-attempt timeouts come from <paramref name="retry"/>.</summary>
    public RetryingJsonClient(HttpRetryOptions retry, HttpClient? http = null, Action<string>? log = null)
    {
        Retry = retry ?? throw new ArgumentNullException(nameof(retry));
        if (retry.MaxRetries < 0) throw new ArgumentOutOfRangeException(nameof(retry), retry.MaxRetries, "max retries must be >= 0");
        if (retry.Timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(retry), retry.Timeout, "timeout must be positive");
        _ownsHttp = http is null;
        _http = http ?? new HttpClient(new SocketsHttpHandler { ConnectTimeout = retry.Timeout }) { Timeout = Timeout.InfiniteTimeSpan };
        Log = log;
    }

    /// <summary>The timeout and retry settings.</summary>
    public HttpRetryOptions Retry { get; }

    /// <summary>Receives a line for each failed attempt that will be retried.</summary>
    public Action<string>? Log { get; set; }

    /// <summary>
    /// Sends <paramref name="body"/> (or a GET when null) to <paramref name="url"/> and parses the JSON answer with
    /// <paramref name="parse"/>, which throws <see cref="InvalidDataException"/> for an answer of the wrong shape.
    /// </summary>
    public async Task<T> SendAsync<T>(HttpMethod method, string url, JsonNode? body, string? bearerToken,
        Func<JsonNode, T> parse, CancellationToken ct)
    {
        var payload = body?.ToJsonString();
        string lastError = "";
        int attempts = 0;
        for (int retry = 0; ; retry++)
        {
            if (retry > 0)
            {
                var wait = Retry.BackoffBefore(retry);
                Log?.Invoke($"{url}: {lastError}; retry {retry}/{Retry.MaxRetries} in {wait.TotalSeconds:0.##} s");
                await Task.Delay(wait, ct).ConfigureAwait(false);
            }
            attempts++;
            bool retryable;
            (retryable, lastError, var ok, var value) = await AttemptAsync(method, url, payload, bearerToken, parse, ct).ConfigureAwait(false);
            if (ok) return value!;
            if (!retryable)
            {
                throw new RewardServerException(url, attempts, $"{url}: {lastError}");
            }
            if (retry >= Retry.MaxRetries)
            {
                throw new RewardServerException(url, attempts, $"{url}: failed after {attempts} attempt(s); last error: {lastError}");
            }
        }
    }

    private async Task<(bool Retryable, string Error, bool Ok, T? Value)> AttemptAsync<T>(HttpMethod method, string url, string? payload,
        string? bearerToken, Func<JsonNode, T> parse, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Retry.Timeout);
        using var request = new HttpRequestMessage(method, url);
        if (payload is not null) request.Content = new StringContent(payload, Encoding.UTF8, "application/json");
        if (!string.IsNullOrEmpty(bearerToken)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearerToken);
        string text;
        HttpStatusCode status;
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token).ConfigureAwait(false);
            status = response.StatusCode;
            text = await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                int code = (int)status;
                bool retryable = code is 408 or 429 || code >= 500;
                return (retryable, $"HTTP {code} {response.ReasonPhrase}: {Excerpt(text)}", false, default);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return (true, $"no answer within the timeout of {Retry.Timeout.TotalSeconds:0.###} s", false, default);
        }
        catch (HttpRequestException e)
        {
            return (true, $"could not connect or read the answer ({Describe(e)})", false, default);
        }
        JsonNode? json;
        try
        {
            json = JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            return (true, $"malformed JSON in the answer ({e.Message}): {Excerpt(text)}", false, default);
        }
        if (json is null) return (true, $"the answer is JSON null: {Excerpt(text)}", false, default);
        try
        {
            return (false, "", true, parse(json));
        }
        catch (Exception e) when (e is InvalidDataException or InvalidOperationException or FormatException or JsonException)
        {
            return (true, $"unexpected answer ({e.Message}): {Excerpt(text)}", false, default);
        }
    }

    private static string Describe(HttpRequestException e)
    {
        var inner = e.InnerException?.Message;
        return inner is null || e.Message.Contains(inner, StringComparison.Ordinal) ? e.Message : $"{e.Message}: {inner}";
    }

    /// <summary>The first characters of a response body, on one line.</summary>
    public static string Excerpt(string text)
    {
        var oneLine = text.ReplaceLineEndings(" ").Trim();
        if (oneLine.Length == 0) return "(empty body)";
        return oneLine.Length <= ExcerptLength ? oneLine : oneLine[..ExcerptLength] + "…";
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsHttp) _http.Dispose();
    }
}
