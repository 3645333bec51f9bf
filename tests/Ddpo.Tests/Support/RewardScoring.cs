using Ddpo.Rewards;

namespace Ddpo.Tests.Support;

/// <summary>Scoring inside a dispose scope without awaiting.</summary>
internal static class RewardScoring
{
    /// <summary>
    /// <see cref="IRewardFunction.ScoreAsync"/> waited for on this thread. TorchSharp's dispose scopes belong to a thread: a
    /// test that opens one and then awaits may go on on another thread, leaving the scope open on the first, where it
    /// collects (and later frees) the tensors of whatever test that thread runs next. Tests with a scope score through this.
    /// </summary>
    public static RewardResult ScoreNow(this IRewardFunction reward, RewardBatch batch) =>
        reward.ScoreAsync(batch, CancellationToken.None).GetAwaiter().GetResult();
}
