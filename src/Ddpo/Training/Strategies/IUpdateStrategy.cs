namespace Ddpo.Training;

/// <summary>
/// What one algorithm (DDPO-IS, DDPO-SF, GRPO, RWR) decides in an epoch's update: which samples it trains on with
/// which per-sample weights, and the loss of one micro-batch at one trained step. The micro-batch loop, the
/// accumulation over processes, the optimizer step and the guards are the same for every algorithm
/// (<see cref="PolicyUpdater"/>); <see cref="UpdateStrategies.For"/> picks the strategy of a config.
/// </summary>
internal interface IUpdateStrategy
{
    /// <summary>
    /// True when the loss is on recorded transitions (policy gradient): the trained steps are the stochastic ones of
    /// the epoch's SDE window, in a random order per sample. False (reward-weighted regression): the loss regresses
    /// the final samples, every recorded step counts, and no step is reordered.
    /// </summary>
    bool OnTransitions { get; }

    /// <summary>True when one optimizer step covers the whole epoch (DDPO-SF: one step per sampling round).</summary>
    bool OneStepPerEpoch { get; }

    /// <summary>The samples to train on and their weights (advantages, or RWR's weights), with the metrics they add.</summary>
    UpdateTargets Targets(EpochSamples samples);

    /// <summary>The loss of a micro-batch at one trained step, and what it measured.</summary>
    MicroLoss Loss(MicroBatch batch);

    /// <summary>Another process trains <paramref name="batch"/>: make the random draws its loss would, so that the shared generator stays in step.</summary>
    void Skip(MicroBatch batch);
}
