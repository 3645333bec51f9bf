namespace Ddpo.Evaluation;

/// <summary>What a base vs fine-tuned evaluation of a run samples and scores (<c>ddpo eval</c>'s options).</summary>
internal sealed record EvaluationOptions
{
    /// <summary>The epoch of the checkpoint to evaluate; null: the newest.</summary>
    public int? CheckpointEpoch { get; init; }

    /// <summary>The prompt sets (<see cref="EvaluationPromptSets.Resolve"/>): train, held-out, a prompt_fn name or file:PATH.</summary>
    public IReadOnlyList<string> PromptSets { get; init; } = ["train", "held-out"];

    /// <summary>
    /// The rewards to score with, by registry name (the run's <c>reward_fn</c> with its weights); empty: the run's
    /// <c>reward_fn</c>, each component of a weighted one, and its <c>watch_rewards</c>.
    /// </summary>
    public IReadOnlyList<string> Rewards { get; init; } = [];

    /// <summary>Images per prompt, each model sampling the same seeds.</summary>
    public int SeedsPerPrompt { get; init; } = 2;

    /// <summary>At most this many prompts per set, evenly spaced.</summary>
    public int MaxPrompts { get; init; } = 48;
}

/// <summary>Runs one phase of an evaluation (sampling a prompt set), e.g. under a progress display.</summary>
internal interface IEvaluationProgress
{
    /// <summary>Runs <paramref name="work"/>, described by <paramref name="description"/>, and returns its result.</summary>
    T Run<T>(string description, Func<T> work);
}
