using static TorchSharp.torch;

namespace Ddpo.Rewards;

/// <summary>
/// A reward whose score is a differentiable function of the image, for reward backpropagation (DRaFT, ReFL,
/// AlignProp): the gradient of the score with respect to the pixels flows back into the sampler.
/// </summary>
public interface IDifferentiableReward : IRewardFunction
{
    /// <summary>
    /// Scores <paramref name="images"/> ([B, 3, H, W] float in [0, 1], on any device, possibly requiring grad) with the
    /// graph kept: a [B] float32 tensor on the images' device, one score per image, equal (up to float rounding) to
    /// what <see cref="IRewardFunction.ScoreAsync"/> gives for the same images.
    /// </summary>
    Tensor ScoreDifferentiable(Tensor images, IReadOnlyList<string> prompts);
}
