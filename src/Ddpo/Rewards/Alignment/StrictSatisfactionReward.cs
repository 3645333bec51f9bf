using System.Text.Json;
using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Prompts;
using Ddpo.Rewards.Remote;

namespace Ddpo.Rewards.Alignment;

/// <summary>
/// The "strict satisfaction" variant (ddpo-pytorch's <c>llava_strict_satisfaction</c>): each prompt's metadata
/// holds <c>questions</c> and <c>answers</c> (JSON arrays of strings of equal length, or one plain string each);
/// the VLM answers every question, and the reward is the fraction of expected answers found as substrings of
/// the model's answers (case-insensitive; ddpo-pytorch compares case-sensitively). Metadata that is missing or
/// malformed gives NaN (the sample is dropped) with <c>invalid_metadata</c> = 1 in the details. Prompts with
/// questions and answers come from a prompt file <c>file:PATH.jsonl</c> (<see cref="PromptRecordSource"/>);
/// <see cref="CheckPrompts"/> refuses a prompt set without them before any image is sampled.
/// </summary>
public sealed class StrictSatisfactionReward : IRewardFunction, IPromptRequirements, IDisposable
{
    /// <summary>The metadata key of the questions.</summary>
    public const string QuestionsKey = "questions";

    /// <summary>The metadata key of the expected answers.</summary>
    public const string AnswersKey = "answers";

    private readonly OpenAiVisionClient _vlm;
    private readonly RewardImageFormat _format;
    private readonly Action<string>? _log;

    /// <summary>Asks <paramref name="vlm"/> (disposed with the reward).</summary>
    public StrictSatisfactionReward(OpenAiVisionClient vlm, RewardImageFormat format = RewardImageFormat.Png, Action<string>? log = null)
    {
        _vlm = vlm ?? throw new ArgumentNullException(nameof(vlm));
        _format = format;
        _log = log;
    }

    /// <inheritdoc/>
    public string Name => RewardNames.VlmStrictSatisfaction;

    /// <inheritdoc/>
    public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        var files = RewardImageEncoding.EncodeAll(batch.Images, _format);
        var mime = RewardImageEncoding.MimeType(_format);
        var rewards = new float[batch.Count];
        var invalid = new float[batch.Count];
        var tasks = new Task<float>[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            var qa = ReadPairs(batch.Metadata[i], out var problem);
            if (qa is null)
            {
                invalid[i] = 1;
                _log?.Invoke($"{Name}: image {i} (prompt '{batch.Prompts[i]}'): {problem}; reward NaN, sample dropped");
                tasks[i] = Task.FromResult(float.NaN);
                continue;
            }
            var file = files[i];
            tasks[i] = ScoreOneAsync(file, mime, qa, ct);
        }
        var values = await Task.WhenAll(tasks).ConfigureAwait(false);
        Array.Copy(values, rewards, rewards.Length);
        return new RewardResult(rewards, new Dictionary<string, float[]> { ["invalid_metadata"] = invalid });
    }

    private async Task<float> ScoreOneAsync(byte[] file, string mime, (string Question, string Answer)[] qa, CancellationToken ct)
    {
        var answers = await Task.WhenAll(qa.Select(p => _vlm.AskAsync(file, mime, p.Question, ct))).ConfigureAwait(false);
        int correct = qa.Where((p, k) => answers[k].Contains(p.Answer, StringComparison.OrdinalIgnoreCase)).Count();
        return (float)correct / qa.Length;
    }

    /// <summary>
    /// Throws a <see cref="ConfigException"/> naming <paramref name="source"/> and the first prompt whose metadata
    /// lacks usable questions and answers, so that a run does not start with every reward NaN.
    /// </summary>
    public static void CheckPrompts(IEnumerable<PromptSample> prompts, string source)
    {
        foreach (var sample in prompts)
        {
            if (ReadPairs(sample.Metadata, out var problem) is null)
            {
                throw new ConfigException(
                    $"{RewardNames.VlmStrictSatisfaction}: prompt '{sample.Prompt}' of {source}: {problem}. This reward needs prompts " +
                    "with questions and answers: use prompt_fn = \"file:PATH.jsonl\" with lines like " +
                    "{\"prompt\": \"two cats\", \"questions\": [\"How many cats are there?\"], \"answers\": [\"two\"]}");
            }
        }
    }

    // Explicit: the interface is internal, and the public static check above keeps its name.
    void IPromptRequirements.CheckPrompts(IEnumerable<PromptSample> prompts, string source) => CheckPrompts(prompts, source);

    /// <summary>The question/answer pairs of a prompt's metadata, or null with <paramref name="problem"/> set.</summary>
    public static (string Question, string Answer)[]? ReadPairs(IReadOnlyDictionary<string, string> metadata, out string problem)
    {
        problem = "";
        if (!metadata.TryGetValue(QuestionsKey, out var q) || !metadata.TryGetValue(AnswersKey, out var a))
        {
            problem = $"metadata needs '{QuestionsKey}' and '{AnswersKey}' (has: {string.Join(", ", metadata.Keys)})";
            return null;
        }
        var questions = ReadList(q);
        var answers = ReadList(a);
        if (questions is null || answers is null)
        {
            problem = $"'{QuestionsKey}' and '{AnswersKey}' must be JSON arrays of strings or plain strings";
            return null;
        }
        if (questions.Length == 0 || questions.Length != answers.Length)
        {
            problem = $"{questions.Length} questions but {answers.Length} answers";
            return null;
        }
        return questions.Zip(answers).ToArray();
    }

    private static string[]? ReadList(string value)
    {
        var t = value.Trim();
        if (!t.StartsWith('[')) return [value];
        try
        {
            return JsonSerializer.Deserialize<string[]>(t);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _vlm.Dispose();
}
