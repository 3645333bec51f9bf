using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>The loss of one micro-batch and what computing it measured (scalar tensors; null where the algorithm has none).</summary>
/// <param name="Loss">The loss to backpropagate (before the division by the step's micro-step count).</param>
/// <param name="ApproxKl">0.5 (logp - logp_old)^2, mean (DDPO-IS, GRPO).</param>
/// <param name="ClipFrac">Fraction of importance ratios outside the clip range (DDPO-IS, GRPO).</param>
/// <param name="KlToBase">Mean KL to the base model's transition (<c>train.kl_coef</c> &gt; 0).</param>
/// <param name="FirstRatioDeviation">max |ratio - 1| of the epoch's first micro-batch (policy gradient).</param>
internal sealed record MicroLoss(Tensor Loss, Tensor? ApproxKl = null, Tensor? ClipFrac = null, Tensor? KlToBase = null, double? FirstRatioDeviation = null);
