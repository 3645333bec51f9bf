using Ddpo.Config;
using Ddpo.Policies;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The policy-gradient algorithms' shared part: each trained step re-evaluates the recorded action's log-probability
/// under the current policy (the sampling's guidance; with <c>train.cfg</c> the unconditional pass too), and with a
/// <see cref="ReferencePolicy"/> (<c>train.kl_coef</c> &gt; 0) adds kl_coef times the KL to the base model's
/// transition. The subclasses choose the advantages and the objective.
/// </summary>
internal abstract class TransitionStrategy(IDiffusionPolicy policy, DdpoConfig config, ReferencePolicy? reference) : IUpdateStrategy
{
    private readonly SamplingOptions _sampling = config.Sample.ToSamplingOptions();

    /// <summary>The run's config.</summary>
    protected DdpoConfig Config => config;

    /// <inheritdoc />
    public bool OnTransitions => true;

    /// <inheritdoc />
    public virtual bool OneStepPerEpoch => false;

    /// <inheritdoc />
    public abstract UpdateTargets Targets(EpochSamples samples);

    /// <summary>The objective of a micro-batch from its log-probabilities (with gradients), the recorded ones and the advantages.</summary>
    protected abstract MicroLoss Objective(Tensor logProb, Tensor oldLogProb, Tensor advantages);

    /// <inheritdoc />
    public MicroLoss Loss(MicroBatch batch)
    {
        var transitions = batch.Transitions(guided: config.Train.Cfg);
        var oldLogProb = batch.Samples.LogProbs[batch.Rows, batch.Step];
        var step = policy.Evaluate(transitions, _sampling);
        var advantages = batch.WeightTensor(transitions.Latents.device);
        double? firstDeviation = null;
        if (batch.First)
        {
            using var _ = no_grad();
            firstDeviation = (step.LogProb - oldLogProb).exp().sub(1).abs().max().item<float>();
        }
        var objective = Objective(step.LogProb, oldLogProb, advantages) with { FirstRatioDeviation = firstDeviation };
        if (reference is null) return objective;
        var klToBase = ReferencePolicy.Kl(step.Mean, reference.Mean(transitions, _sampling), step.Std).mean();
        return objective with { Loss = objective.Loss + config.Train.KlCoef * klToBase, KlToBase = klToBase };
    }

    /// <inheritdoc />
    public void Skip(MicroBatch batch)
    {
    }

    /// <summary>DDPO's advantages: per prompt with the stat tracker (<c>per_prompt_stat_tracking</c>), else over the whole epoch.</summary>
    protected static UpdateTargets DdpoAdvantages(EpochSamples samples, PerPromptStatTracker? tracker) =>
        new(null, tracker is not null ? tracker.Update(samples.Prompts, samples.Rewards) : GlobalNormalizer.Normalize(samples.Rewards), UpdateTargets.NoMetrics);
}
