namespace Ddpo.Rewards.Remote;

/// <summary>Timeouts and retries of reward-server requests.</summary>
/// <param name="Timeout">How long one attempt may take.</param>
/// <param name="MaxRetries">Retries after the first attempt (connection errors, timeouts, HTTP 408/429/5xx, malformed answers).</param>
/// <param name="InitialBackoff">The wait before the first retry; doubled for each further one.</param>
/// <param name="MaxBackoff">The longest wait between attempts.</param>
public sealed record HttpRetryOptions(TimeSpan Timeout, int MaxRetries, TimeSpan InitialBackoff, TimeSpan MaxBackoff)
{
    /// <summary>From config values in seconds; the backoff is capped at 60 s.</summary>
    public static HttpRetryOptions FromSeconds(double timeoutS, int maxRetries, double backoffS) =>
        new(TimeSpan.FromSeconds(timeoutS), maxRetries, TimeSpan.FromSeconds(backoffS), TimeSpan.FromSeconds(60));

    /// <summary>The wait before retry number <paramref name="retry"/> (1-based): <c>InitialBackoff · 2^(retry-1)</c>, capped.</summary>
    public TimeSpan BackoffBefore(int retry)
    {
        var seconds = InitialBackoff.TotalSeconds * Math.Pow(2, retry - 1);
        return TimeSpan.FromSeconds(Math.Min(seconds, MaxBackoff.TotalSeconds));
    }
}

/// <summary>
/// A reward server (or VLM server) could not give an answer after all retries, or refused the request
/// (HTTP 4xx); the message names the URL and what came back.
/// </summary>
public sealed class RewardServerException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RewardServerException(string url, int attempts, string message, Exception? inner = null) : base(message, inner)
    {
        Url = url;
        Attempts = attempts;
    }

    /// <summary>The URL requested.</summary>
    public string Url { get; }

    /// <summary>How many attempts were made.</summary>
    public int Attempts { get; }
}
