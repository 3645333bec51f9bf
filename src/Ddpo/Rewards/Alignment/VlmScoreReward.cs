using Ddpo.Rewards.Remote;

namespace Ddpo.Rewards.Alignment;

/// <summary>
/// A vision-language model's rating of each image for its prompt (Flow-GRPO's <c>unifiedreward_score_sglang</c> with
/// any template): the question is the template with <c>{prompt}</c> replaced, asked through any OpenAI-compatible
/// chat-completions server (image part first, then the text, as Flow-GRPO sends it), and the rating is read strictly
/// from the answer (<see cref="VlmScoreScale.Read"/>) and mapped to [0, 1] as <c>(s - min) / (max - min)</c>
/// (Flow-GRPO divides a 1-5 score by 5; a positive affine change leaves group-normalised advantages unchanged).
/// An answer without a score in range gives NaN (the sample is dropped) with <c>invalid_answer</c> = 1 and a
/// line naming the image, prompt and answer, where Flow-GRPO would score 0. Details: <c>raw_score</c>, <c>invalid_answer</c>.
/// </summary>
internal sealed class VlmScoreReward : IRewardFunction, IDisposable
{
    private readonly OpenAiVisionClient _vlm;
    private readonly RewardImageFormat _format;
    private readonly Action<string>? _log;

    /// <summary>Asks <paramref name="vlm"/> (disposed with the reward) <paramref name="template"/> (a preset name or a text with <c>{prompt}</c>).</summary>
    public VlmScoreReward(OpenAiVisionClient vlm, string template, VlmScoreScale scale, RewardImageFormat format = RewardImageFormat.Png,
        Action<string>? log = null)
    {
        _vlm = vlm ?? throw new ArgumentNullException(nameof(vlm));
        if (VlmScoreTemplates.Check(template) is { } problem) throw new ArgumentException($"reward.vlm_score.template: {problem}", nameof(template));
        Template = VlmScoreTemplates.Resolve(template);
        Scale = scale ?? throw new ArgumentNullException(nameof(scale));
        _format = format;
        _log = log;
    }

    /// <summary>The question template (a preset resolved to its text).</summary>
    public string Template { get; }

    /// <summary>The range of the rating.</summary>
    public VlmScoreScale Scale { get; }

    /// <summary>The answers of the last batch scored (for logs and inspection).</summary>
    public IReadOnlyList<string> LastAnswers { get; private set; } = [];

    /// <inheritdoc/>
    public string Name => RewardNames.VlmScore;

    /// <inheritdoc/>
    public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        var files = RewardImageEncoding.EncodeAll(batch.Images, _format);
        var mime = RewardImageEncoding.MimeType(_format);
        var answers = await Task.WhenAll(files.Select((f, i) =>
            _vlm.AskAsync(f, mime, VlmScoreTemplates.Fill(Template, batch.Prompts[i]), ct, imageFirst: true))).ConfigureAwait(false);
        LastAnswers = answers;
        var rewards = new float[batch.Count];
        var raw = new float[batch.Count];
        var invalid = new float[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            if (Scale.Read(answers[i], out var problem) is { } score)
            {
                raw[i] = (float)score;
                rewards[i] = (float)Scale.Normalise(score);
                continue;
            }
            raw[i] = rewards[i] = float.NaN;
            invalid[i] = 1;
            _log?.Invoke($"{Name}: image {i} (prompt '{batch.Prompts[i]}'): {problem} in the answer from {_vlm.CompletionsUrl}: " +
                $"'{RetryingJsonClient.Excerpt(answers[i])}'; reward NaN, sample dropped");
        }
        return new RewardResult(rewards, new Dictionary<string, float[]> { ["raw_score"] = raw, ["invalid_answer"] = invalid });
    }

    /// <inheritdoc/>
    public void Dispose() => _vlm.Dispose();
}
