namespace Ddpo.Prompts;

/// <summary>A prompt and its metadata (e.g. <c>animal</c>, <c>activity</c>) passed on to the reward function.</summary>
public sealed record PromptSample(string Prompt, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>Empty metadata, shared.</summary>
    public static IReadOnlyDictionary<string, string> NoMetadata { get; } = new Dictionary<string, string>();
}

/// <summary>A distribution over prompts (ddpo-pytorch's <c>prompt_fn</c>).</summary>
public interface IPromptSource
{
    /// <summary>Draws one prompt using <paramref name="rng"/> (the trainer seeds it from the run seed and the epoch).</summary>
    PromptSample Next(Random rng);

    /// <summary>Every prompt this source can produce, in a fixed order.</summary>
    IReadOnlyList<string> All { get; }

    /// <summary>The prompts of <see cref="All"/> with the metadata <see cref="Next"/> gives them (for evaluation).</summary>
    IReadOnlyList<PromptSample> Samples { get; }
}
