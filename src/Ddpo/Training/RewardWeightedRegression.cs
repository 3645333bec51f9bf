using Ddpo.Pipelines;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The loss of the reward-weighted regression baselines, as jannerm/ddpo's <c>diffusion.train_step</c>:
/// the ordinary denoising loss on the policy's own final samples x_0 (a random timestep and fresh noise
/// per sample), each sample's mean squared error multiplied by its weight.
/// </summary>
internal static class RewardWeightedRegression
{
    /// <summary>
    /// One micro-batch: x_t = add_noise(x_0, noise, t) with t ~ U{0 .. num_train_timesteps - 1}; the
    /// prediction is the guided one, eps_neg + g (eps_pos - eps_neg), when <paramref name="negativeEmbeds"/>
    /// is given (jannerm/ddpo's <c>train_cfg</c>), else the conditional one; it is regressed onto the
    /// scheduler's training target (the noise for epsilon-prediction models). Returns
    /// <see cref="Weighted"/> of the per-sample errors. Draws t, then the noise, from <paramref name="generator"/>.
    /// </summary>
    public static Tensor Loss(TextToImagePipeline pipeline, Tensor x0, Tensor promptEmbeds, Tensor? negativeEmbeds,
        double guidanceScale, Tensor weights, int batchSize, Generator generator)
    {
        using var scope = NewDisposeScope();
        long count = x0.shape[0];
        var device = x0.device;
        var t = randint(0, pipeline.Scheduler.Config.NumTrainTimesteps, [count], dtype: ScalarType.Int64, generator: generator).to(device);
        var noise = randn(x0.shape, generator: generator).to(device);
        var noisy = pipeline.Scheduler.AddNoise(x0, noise, t);
        var prediction = pipeline.PredictNoise(noisy, t, promptEmbeds, negativeEmbeds, guidanceScale);
        var target = pipeline.Scheduler.TrainingTarget(x0, noise, t);
        var perSample = (prediction - target).pow(2).flatten(1).mean([1L]);
        return Weighted(perSample, weights.to(device), batchSize).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Makes the draws <see cref="Loss"/> makes for a micro-batch whose final latents have <paramref name="x0Shape"/>
    /// (the timesteps, then the noise) and discards them: a rank that leaves a micro-batch to another rank keeps
    /// <paramref name="generator"/> where one process would have it.
    /// </summary>
    public static void SkipDraws(TextToImagePipeline pipeline, long[] x0Shape, Generator generator)
    {
        using var scope = NewDisposeScope();
        randint(0, pipeline.Scheduler.Config.NumTrainTimesteps, [x0Shape[0]], dtype: ScalarType.Int64, generator: generator);
        randn(x0Shape, generator: generator);
    }

    /// <summary>
    /// sum_i w_i · loss_i / <paramref name="batchSize"/> (jannerm/ddpo: <c>(loss * weights / batch_size).sum()</c>).
    /// Dividing by the configured batch size, not by the number of samples present, gives every sample of
    /// the epoch the same share of the gradient, whichever micro-batch it falls in (a short last batch too).
    /// </summary>
    public static Tensor Weighted(Tensor perSampleLoss, Tensor weights, int batchSize)
    {
        if (!perSampleLoss.shape.SequenceEqual(weights.shape))
        {
            throw new ArgumentException($"weights: shape [{string.Join(", ", weights.shape)}] does not match the losses [{string.Join(", ", perSampleLoss.shape)}]");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        using var scope = NewDisposeScope();
        return ((weights * perSampleLoss).sum() / batchSize).MoveToOuterDisposeScope();
    }
}
