using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Rewards;

namespace Ddpo.Training;

/// <summary>The reward a reward-backpropagation run differentiates, or why it cannot.</summary>
internal static class DifferentiableRewards
{
    /// <summary>
    /// <paramref name="reward"/> as an <see cref="IDifferentiableReward"/> (a <see cref="WatchedReward"/>'s optimised
    /// reward: the updater scores the watches itself, on the same images); a <see cref="ConfigException"/> naming <c>reward_fn</c> (or the
    /// <c>rewards</c> components) when it is not differentiable.
    /// </summary>
    public static IDifferentiableReward Require(IRewardFunction reward, DdpoConfig config)
    {
        var optimised = reward is WatchedReward watched ? watched.Optimised : reward;
        var algorithm = config.Algorithm.ToConfigName();
        if (optimised is WeightedSumReward sum && !sum.IsDifferentiable)
        {
            throw config.Problem("rewards", $"algorithm = \"{algorithm}\" backpropagates the reward's gradient, but component(s) " +
                $"{string.Join(", ", sum.NonDifferentiableComponents)} of the weighted reward are not differentiable " +
                "(differentiable: brightness, image_contrast, colorfulness); use ddpo_is, grpo or rwr for them");
        }
        if (optimised is not IDifferentiableReward differentiable)
        {
            throw config.Problem("reward_fn", $"algorithm = \"{algorithm}\" backpropagates the reward's gradient, but reward '{optimised.Name}' " +
                "is not differentiable (differentiable: brightness, image_contrast, colorfulness, or a weighted sum of them); " +
                "use ddpo_is, grpo or rwr for it");
        }
        return differentiable;
    }
}
