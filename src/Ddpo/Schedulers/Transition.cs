using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// One stochastic sampler step as a Gaussian policy action: x_{t-1} ~ N(<see cref="Mean"/>, <see cref="Std"/>²), and
/// the log-probability of <see cref="Next"/> under it, averaged over the non-batch dimensions (ddpo-pytorch's and
/// Flow-GRPO's definition). Made inside the caller's dispose scope, which frees it (<see cref="Next"/> may be the
/// recorded sample itself).
/// </summary>
/// <param name="Next">x_{t-1}: the drawn sample when sampling, the recorded one when re-evaluating.</param>
/// <param name="LogProb">log p(x_{t-1} | x_t), [B] (float32, float64 for a float64 model).</param>
/// <param name="Mean">The mean of the step's Gaussian (differentiable with respect to the model output).</param>
/// <param name="Std">The step's standard deviation, broadcastable to <see cref="Mean"/>.</param>
internal sealed record Transition(Tensor Next, Tensor LogProb, Tensor Mean, Tensor Std);
