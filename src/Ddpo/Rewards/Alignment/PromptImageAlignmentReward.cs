using Ddpo.Rewards.Remote;
using Ddpo.Text;

namespace Ddpo.Rewards.Alignment;

/// <summary>
/// Prompt-image alignment as in the DDPO paper (ddpo-pytorch's <c>llava_bertscore</c>): a vision-language
/// model answers <see cref="Question"/> about each image, and the reward is the BERTScore recall of the answer
/// against <c>"The image contains {prompt}"</c>. Details: <c>precision</c>, <c>f1</c> and <c>invalid_answer</c>
/// (1 where the model gave no text: that reward is NaN, so the sample is dropped, and a line is logged).
/// </summary>
public sealed class PromptImageAlignmentReward : IRewardFunction, IDisposable
{
    /// <summary>The question of the paper.</summary>
    public const string DefaultQuestion = "Answer concisely: what is going on in this image?";

    private readonly OpenAiVisionClient _vlm;
    private readonly BertScorer _scorer;
    private readonly RewardImageFormat _format;
    private readonly Action<string>? _log;

    /// <summary>Scores with <paramref name="vlm"/> and <paramref name="scorer"/>, both disposed with the reward.</summary>
    internal PromptImageAlignmentReward(OpenAiVisionClient vlm, BertScorer scorer, string question = DefaultQuestion,
        RewardImageFormat format = RewardImageFormat.Png, Action<string>? log = null)
    {
        _vlm = vlm ?? throw new ArgumentNullException(nameof(vlm));
        _scorer = scorer ?? throw new ArgumentNullException(nameof(scorer));
        Question = string.IsNullOrWhiteSpace(question) ? throw new ArgumentException("the question must not be empty", nameof(question)) : question;
        _format = format;
        _log = log;
    }

    /// <summary>The question asked about each image.</summary>
    public string Question { get; }

    /// <summary>The answers of the last batch scored (for logs and inspection).</summary>
    public IReadOnlyList<string> LastAnswers { get; private set; } = [];

    /// <inheritdoc/>
    public string Name => RewardNames.PromptImageAlignment;

    /// <summary>The reference sentence a prompt's answer is compared with.</summary>
    public static string Reference(string prompt) => $"The image contains {prompt}";

    /// <inheritdoc/>
    public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        var files = RewardImageEncoding.EncodeAll(batch.Images, _format);
        var mime = RewardImageEncoding.MimeType(_format);
        var answers = await Task.WhenAll(files.Select(f => _vlm.AskAsync(f, mime, Question, ct))).ConfigureAwait(false);
        LastAnswers = answers;
        var scores = _scorer.Score(answers, batch.Prompts.Select(Reference).ToArray());
        var rewards = scores.Recall.ToArray();
        var invalid = new float[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(answers[i]) || !float.IsFinite(rewards[i]))
            {
                invalid[i] = 1;
                var why = string.IsNullOrWhiteSpace(answers[i])
                    ? $"no text in the answer from {_vlm.CompletionsUrl}"
                    : $"BERTScore is undefined for answer '{answers[i]}' (with idf, references identical across the batch weigh 0)";
                _log?.Invoke($"{Name}: image {i} (prompt '{batch.Prompts[i]}'): {why}; reward NaN, sample dropped");
                rewards[i] = float.NaN;
            }
        }
        return new RewardResult(rewards, new Dictionary<string, float[]>
        {
            ["precision"] = scores.Precision,
            ["f1"] = scores.F1,
            ["invalid_answer"] = invalid,
        });
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _vlm.Dispose();
        _scorer.Dispose();
    }
}
