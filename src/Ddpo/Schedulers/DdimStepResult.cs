using static TorchSharp.torch;

namespace Ddpo.Schedulers;

/// <summary>
/// One DDIM step as a Gaussian policy action: the next sample, its log-probability under
/// N(<see cref="Mean"/>, <see cref="Std"/>²) averaged over non-batch dimensions (ddpo-pytorch's
/// definition), and the model's clean-sample estimate. The caller owns (disposes) the tensors.
/// </summary>
/// <param name="PrevSample">x_{t-1}, in the dtype of the input sample.</param>
/// <param name="LogProb">log p(x_{t-1} | x_t), shape [B], float32.</param>
/// <param name="Mean">The mean of the step's Gaussian, float32.</param>
/// <param name="Std">The standard deviation (eta * sqrt(variance)), broadcastable, float32.</param>
/// <param name="PredOriginalSample">The predicted x_0, float32.</param>
internal sealed record DdimStepResult(Tensor PrevSample, Tensor LogProb, Tensor Mean, Tensor Std, Tensor PredOriginalSample);
