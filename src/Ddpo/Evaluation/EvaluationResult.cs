using System.Text.Json;
using System.Text.Json.Serialization;
using Ddpo.Prompts;

namespace Ddpo.Evaluation;

/// <summary>
/// A base vs fine-tuned evaluation of a run: what was sampled and, per prompt set and reward, the
/// <see cref="EvaluationRow"/>; written as <c>RUN/eval/eval-epoch-NNNN.json</c> (<see cref="ToJson"/>).
/// </summary>
/// <param name="Run">The run folder (full path).</param>
/// <param name="CheckpointEpoch">The epoch of the fine-tuned checkpoint.</param>
/// <param name="SeedsPerPrompt">Images per prompt and model.</param>
/// <param name="PromptSets">The prompt sets, in order, as sampled (after <see cref="EvaluationOptions.MaxPrompts"/>).</param>
/// <param name="Rows">Per prompt set (outer) and reward (inner), in order.</param>
internal sealed record EvaluationResult(string Run, int CheckpointEpoch, int SeedsPerPrompt,
    IReadOnlyList<(string Name, IReadOnlyList<PromptSample> Prompts)> PromptSets, IReadOnlyList<EvaluationRow> Rows)
{
    /// <summary>The JSON of <c>eval-epoch-NNNN.json</c>: run, checkpoint_epoch, seeds_per_prompt, prompt_sets, results (NaN as "NaN").</summary>
    public string ToJson() => JsonSerializer.Serialize(new
    {
        run = Run,
        checkpoint_epoch = CheckpointEpoch,
        seeds_per_prompt = SeedsPerPrompt,
        prompt_sets = PromptSets.ToDictionary(s => s.Name, s => s.Prompts.Select(p => p.Prompt)),
        results = Rows.Select(r => new
        {
            prompts = r.PromptSet, reward = r.Reward,
            base_mean = r.Base.Mean, base_sem = r.Base.Sem, finetuned_mean = r.FineTuned.Mean, finetuned_sem = r.FineTuned.Sem,
            change = r.Change, change_sem = r.ChangeSem, n = r.Base.Count,
        }),
    }, new JsonSerializerOptions { WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals });
}
