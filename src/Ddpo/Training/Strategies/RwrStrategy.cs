using Ddpo.Config;
using Ddpo.Policies;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The paper's reward-weighted regression baselines, as jannerm/ddpo defines them: the family's denoising loss on
/// the policy's own final samples (a random time and fresh noise per sample, <see cref="IDiffusionPolicy.DenoisingLoss"/>),
/// each sample's error weighted. <c>rwr</c>: softmax weights over the epoch (<see cref="RwrWeights.Softmax"/>);
/// <c>rwr_sparse</c>: the samples at or above <c>rwr.percentile</c>, weight 1. With <c>train.cfg</c> the guided
/// prediction is regressed, with the sampling guidance scale.
/// </summary>
internal sealed class RwrStrategy(IDiffusionPolicy policy, DdpoConfig config, bool sparse) : IUpdateStrategy
{
    /// <inheritdoc />
    public bool OnTransitions => false;

    /// <inheritdoc />
    public bool OneStepPerEpoch => false;

    /// <inheritdoc />
    public UpdateTargets Targets(EpochSamples samples)
    {
        if (!sparse) return new UpdateTargets(null, RwrWeights.Softmax(samples.Rewards, config.Rwr.Temperature), UpdateTargets.NoMetrics);
        var kept = samples.Select(RwrWeights.AtOrAbovePercentile(samples.Rewards, config.Rwr.Percentile));
        return new UpdateTargets(kept, Enumerable.Repeat(1f, kept.Count).ToArray(), UpdateTargets.NoMetrics);
    }

    /// <inheritdoc />
    public MicroLoss Loss(MicroBatch batch)
    {
        var s = batch.Samples;
        var x0 = s.NextLatents[batch.Rows, s.Steps - 1];
        var unconditional = config.Train.Cfg ? s.Unconditional?.Slice(batch.Start, batch.Start + batch.Count) : null;
        var perSample = policy.DenoisingLoss(x0, s.Condition.Slice(batch.Start, batch.Start + batch.Count), unconditional, config.Sample.GuidanceScale, batch.Generator);
        return new MicroLoss(Weighted(perSample, batch.WeightTensor(x0.device), config.Train.BatchSize));
    }

    /// <inheritdoc />
    public void Skip(MicroBatch batch) =>
        policy.SkipDenoisingDraws(batch.Samples.NextLatents[batch.Rows, batch.Samples.Steps - 1].shape, batch.Generator);

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
