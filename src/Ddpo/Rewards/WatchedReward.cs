using Ddpo.Prompts;

namespace Ddpo.Rewards;

/// <summary>
/// The optimised reward plus "watch" rewards computed on the same images but not optimised: their
/// values travel in the details as <c>watch:NAME</c>, so training can log them and the report can
/// flag over-optimisation (the optimised reward rising while a watch reward falls).
/// </summary>
public sealed class WatchedReward(IRewardFunction optimised, IReadOnlyList<IRewardFunction> watches) : IRewardFunction, IPromptRequirements, IDisposable
{
    /// <summary>The prefix of watch-reward detail keys.</summary>
    public const string DetailPrefix = "watch:";

    /// <inheritdoc />
    public string Name => optimised.Name;

    /// <summary>The reward optimised (the watches are only logged).</summary>
    public IRewardFunction Optimised => optimised;

    /// <summary>The watch rewards, each logged as <see cref="DetailPrefix"/> + its name.</summary>
    public IReadOnlyList<IRewardFunction> Watches => watches;

    /// <inheritdoc />
    public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        var main = await optimised.ScoreAsync(batch, ct).ConfigureAwait(false);
        var details = main.Details is null ? new Dictionary<string, float[]>() : new Dictionary<string, float[]>(main.Details);
        foreach (var watch in watches)
        {
            var r = await watch.ScoreAsync(batch, ct).ConfigureAwait(false);
            details[DetailPrefix + watch.Name] = r.Rewards;
        }
        return new RewardResult(main.Rewards, details);
    }

    // The watches score the same images, so their prompt requirements hold as much as the optimised reward's.
    void IPromptRequirements.CheckPrompts(IEnumerable<PromptSample> prompts, string source) =>
        RewardPromptChecks.CheckAll([optimised, .. watches], prompts, source);

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var w in watches) (w as IDisposable)?.Dispose();
    }
}
