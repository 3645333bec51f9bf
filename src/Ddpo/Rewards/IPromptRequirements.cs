using Ddpo.Prompts;

namespace Ddpo.Rewards;

/// <summary>
/// A reward that needs something of its prompts (e.g. questions and answers in their metadata), checked before any
/// image is sampled so that a run or an evaluation does not start with every reward NaN. Wrappers of rewards
/// forward it to the rewards they wrap; <see cref="RewardPromptChecks.Check"/> calls it where implemented.
/// </summary>
internal interface IPromptRequirements
{
    /// <summary>Throws a <see cref="Base.ConfigException"/> naming <paramref name="source"/> and the first prompt that does not qualify.</summary>
    void CheckPrompts(IEnumerable<PromptSample> prompts, string source);
}

/// <summary>The prompt check of any reward: the one place callers go through, whatever wraps the reward.</summary>
internal static class RewardPromptChecks
{
    /// <summary>
    /// Checks <paramref name="prompts"/> against <paramref name="reward"/>'s requirements when it has some
    /// (<see cref="IPromptRequirements"/>); <paramref name="source"/> says where they came from (e.g. <c>prompt_fn 'animals'</c>).
    /// </summary>
    public static void Check(IRewardFunction reward, IEnumerable<PromptSample> prompts, string source)
    {
        ArgumentNullException.ThrowIfNull(reward);
        if (reward is IPromptRequirements requirements) requirements.CheckPrompts(prompts, source);
    }

    /// <summary>Checks <paramref name="prompts"/> against each of <paramref name="rewards"/> (for wrappers of several).</summary>
    public static void CheckAll(IEnumerable<IRewardFunction> rewards, IEnumerable<PromptSample> prompts, string source)
    {
        // Enumerated once per reward: a lazy sequence is read once here.
        var list = prompts as IReadOnlyCollection<PromptSample> ?? prompts.ToList();
        foreach (var reward in rewards) Check(reward, list, source);
    }
}
