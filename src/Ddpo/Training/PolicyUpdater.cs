using System.Diagnostics;
using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Distributed;
using Ddpo.Policies;
using Ddpo.Schedulers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>Averages of the training phase of one epoch.</summary>
/// <param name="Loss">Mean loss over micro-steps.</param>
/// <param name="ApproxKl">Mean of 0.5 (logp - logp_old)^2 (DDPO-IS, GRPO; 0 otherwise).</param>
/// <param name="ClipFrac">Fraction of clipped ratios (DDPO-IS, GRPO; 0 otherwise).</param>
/// <param name="FirstRatioMaxDeviation">max |ratio - 1| at the first micro-step of the epoch, before any update (0 when exact).</param>
/// <param name="OptimizerSteps">Number of optimizer steps taken.</param>
/// <param name="MicroSteps">Number of forward/backward passes.</param>
/// <param name="Seconds">Wall time of the phase.</param>
/// <param name="Samples">Samples trained on (for sparse RWR, those at or above the percentile).</param>
/// <param name="SkippedSteps">Optimizer steps skipped because their loss or gradients were not finite (<see cref="NonFiniteGuard"/>, any precision).</param>
/// <param name="LossScale">The loss scale at the end of the phase (1 without loss scaling).</param>
/// <param name="KlMean">Mean KL between the policy's and the base model's transitions over the trained steps
/// (<c>train.kl_coef</c> &gt; 0; null otherwise).</param>
/// <param name="TargetMetrics">What the strategy's choice of targets adds to the epoch's line (<see cref="UpdateTargets.Metrics"/>).</param>
internal sealed record UpdateStats(double Loss, double ApproxKl, double ClipFrac, double FirstRatioMaxDeviation,
    int OptimizerSteps, int MicroSteps, double Seconds, int Samples, int SkippedSteps = 0, double LossScale = 1, double? KlMean = null,
    IReadOnlyDictionary<string, object?>? TargetMetrics = null);

/// <summary>
/// The training phase of an epoch, the same micro-batch loop for every algorithm: the strategy
/// (<see cref="IUpdateStrategy"/>: DDPO-IS, DDPO-SF, GRPO, RWR) chooses the targets and the loss of each
/// micro-batch; this loop shuffles the samples each inner epoch (and, for a transition loss, each sample's trained
/// steps), shares the micro-batches of an optimizer step among the processes, accumulates, and steps.
/// With an enabled <see cref="LossScaler"/> (fp16 models) the backward pass runs on the scaled loss and the
/// gradients are unscaled before clipping, as accelerate does. In every precision a step whose loss or gradients are
/// not finite is skipped, and non-finite weights or too many skips in a row stop the run (<see cref="NonFiniteGuard"/>).
/// Only the steps of the epoch's SDE window are trained (<see cref="SdeWindow"/>).
/// </summary>
internal sealed class PolicyUpdater(IDiffusionPolicy policy, IUpdateStrategy strategy, TrainableWeights weights, optim.Optimizer optimizer,
    DdpoConfig config, ITrainingObserver observer, LossScaler? scaler = null, DataParallel? parallel = null)
{
    private readonly LossScaler _scaler = scaler ?? new LossScaler(enabled: false);
    private readonly DataParallel _parallel = parallel ?? DataParallel.Single;
    private readonly NonFiniteGuard _guard = new(config.Train.MaxSkippedSteps);

    /// <summary>
    /// A testing aid: called with (epoch, local micro-step of the epoch) after each micro-step's backward pass; when it
    /// returns true a NaN is written into the first trainable gradient, as a faulty kernel would.
    /// </summary>
    internal Func<int, int, bool>? GradientFault { get; init; }

    /// <summary>Called after each optimizer step taken (not a skipped one) with the epoch's count of steps taken so far (the EMA's update).</summary>
    internal Action<int>? OptimizerStepped { get; init; }

    /// <summary>The update of an epoch on <paramref name="samples"/> (their finite-reward ones): the strategy's targets, then the loop.</summary>
    public UpdateStats Update(EpochSamples samples, int epoch)
    {
        if (samples.Count == 0) return new UpdateStats(double.NaN, 0, 0, 0, 0, 0, 0, 0, LossScale: _scaler.Scale);
        using var targets = strategy.Targets(samples);
        return Train(targets.Subset ?? samples, targets.Weights, epoch) with { TargetMetrics = targets.Metrics };
    }

    /// <summary>Trains on <paramref name="samples"/> with per-sample <paramref name="weights"/> (advantages or RWR weights).</summary>
    private UpdateStats Train(EpochSamples samples, float[] weights, int epoch)
    {
        var clock = Stopwatch.StartNew();
        var t = config.Train;
        var trained = strategy.OnTransitions
            ? SdeWindow.TrainedSteps(config.Sample, epoch, PolicySteps(samples.Steps))
            // Regression on the final samples needs no log-probabilities, so every step counts.
            : new StepWindow(0, samples.Steps);
        int trainSteps = Math.Max(1, (int)(trained.Width * t.TimestepFraction));
        int batches = (samples.Count + t.BatchSize - 1) / t.BatchSize;
        // An optimizer step covers the same global micro-batches on any number of processes (the per-process
        // accumulation times the processes; DDPO-SF: the whole epoch); each rank trains on its part of them and the
        // gradients are summed, so every loss is divided by the step's global micro-step count.
        int batchesPerStep = strategy.OneStepPerEpoch ? batches : t.GradientAccumulationSteps * _parallel.Group.Size;
        int microPerStep = batchesPerStep * trainSteps;
        int localMicro = 0;
        for (int first = 0; first < batches; first += batchesPerStep)
        {
            var (start, end) = _parallel.Shard(first, Math.Min(first + batchesPerStep, batches));
            localMicro += (end - start) * trainSteps;
        }
        using var acc = new Accumulator();
        policy.Denoiser.train();
        observer.PhaseStarted(epoch, "training", t.NumInnerEpochs * localMicro);
        int done = 0;
        try
        {
            for (int inner = 0; inner < t.NumInnerEpochs; inner++)
            {
                var gen = new Generator(SeedMix.Derive(config.Seed, epoch, "shuffle", inner));
                var order = randperm(samples.Count, generator: gen).data<long>().ToArray();
                using var shuffled = samples.Select(order);
                var shuffledWeights = order.Select(i => weights[i]).ToArray();
                // A regression loss trains on final samples only: the steps need no reordering.
                using var permuted = strategy.OnTransitions ? PermuteSteps(shuffled, trained, gen) : null;
                var rows = permuted ?? shuffled;
                for (int first = 0; first < batches; first += batchesPerStep)
                {
                    var (mine, mineEnd) = _parallel.Shard(first, Math.Min(first + batchesPerStep, batches));
                    for (int b = first; b < Math.Min(first + batchesPerStep, batches); b++)
                    {
                        int start = b * t.BatchSize, count = Math.Min(t.BatchSize, samples.Count - start);
                        for (int j = 0; j < trainSteps; j++)
                        {
                            var batch = new MicroBatch(rows, shuffledWeights, start, count, j, gen, First: acc.FirstRatioDeviation is null);
                            if (b < mine || b >= mineEnd)
                            {
                                // Another rank trains on this micro-batch; its draws are made here too so that the
                                // shared generator stays where one process would have it.
                                strategy.Skip(batch);
                                continue;
                            }
                            using var scope = NewDisposeScope();
                            var loss = strategy.Loss(batch);
                            if (loss.ApproxKl is not null) acc.Add(ref acc.Kl, loss.ApproxKl);
                            if (loss.ClipFrac is not null) acc.Add(ref acc.ClipFrac, loss.ClipFrac);
                            if (loss.KlToBase is not null) acc.Add(ref acc.KlToBase, loss.KlToBase);
                            if (loss.FirstRatioDeviation is { } deviation) acc.FirstRatioDeviation = deviation;
                            _scaler.Scaled(loss.Loss / microPerStep).backward();
                            if (GradientFault?.Invoke(epoch, acc.Micro) == true) PoisonGradient();
                            acc.Add(ref acc.Loss, loss.Loss);
                            acc.Add(ref acc.StepLoss, loss.Loss);
                            acc.Micro++;
                            observer.PhaseProgress("training", ++done);
                        }
                    }
                    StepOptimizer(acc, epoch);
                }
            }
            _guard.Flush(epoch);
        }
        finally
        {
            _guard.Discard();
            policy.Denoiser.eval();
            optimizer.zero_grad();
        }
        // The statistics are means over every rank's micro-steps; the first ratio is rank 0's (its first micro-step
        // is the epoch's first).
        var sums = new[] { Accumulator.Read(acc.Loss), Accumulator.Read(acc.Kl), Accumulator.Read(acc.ClipFrac), acc.Micro,
            _parallel.Group.Rank == 0 ? acc.FirstRatioDeviation ?? 0 : 0, Accumulator.Read(acc.KlToBase) };
        _parallel.Sum(sums);
        int n = Math.Max((int)sums[3], 1);
        return new UpdateStats(sums[0] / n, sums[1] / n, sums[2] / n, sums[4],
            acc.OptimizerSteps, (int)sums[3], clock.Elapsed.TotalSeconds, samples.Count, acc.SkippedSteps, _scaler.Scale,
            config.Train.KlCoef > 0 || (config.Algorithm == TrainingAlgorithm.Nft && config.Nft.KlCoef > 0) ? sums[5] / n : null);
    }

    /// <summary>Each sample's trained steps (the policy steps, or those of the SDE window) in its own random order.</summary>
    private static EpochSamples PermuteSteps(EpochSamples samples, StepWindow trained, Generator gen)
    {
        using var perms = stack(Enumerable.Range(0, samples.Count).Select(_ => randperm(trained.Width, generator: gen)).ToList());
        if (trained.Start == 0) return samples.PermuteSteps(perms);
        using var shifted = perms + trained.Start;
        return samples.PermuteSteps(shifted);
    }

    /// <summary>
    /// The leading steps of each trajectory that are actions (stochastic, with a log-probability). A last step
    /// with zero variance (DDIM's with set_alpha_to_one = true under sample.final_step = "diffusers", or
    /// timestep 0 when the scheduler's steps_offset is 0) is part of the environment, not an action, and is left
    /// out. timestep_fraction is a fraction of these steps.
    /// </summary>
    private int PolicySteps(int recordedSteps)
    {
        if (recordedSteps != config.Sample.NumSteps)
        {
            throw new InvalidOperationException($"the trajectories have {recordedSteps} steps but sample.num_steps is {config.Sample.NumSteps}");
        }
        return policy.StochasticSteps(config.Sample.ToSamplingOptions());
    }

    /// <summary>
    /// One optimizer step on the accumulated gradients, in accelerate's order: sum over the ranks, unscale, check
    /// (<see cref="NonFiniteGuard"/>: one sync), clip to max_grad_norm, step unless the loss or a gradient is
    /// infinite or NaN, zero the gradients, update the loss scale. A skipped step leaves the weights and the AdamW
    /// state untouched.
    /// </summary>
    private void StepOptimizer(Accumulator acc, int epoch)
    {
        var parameters = weights.Parameters;
        _parallel.SumGradients(parameters);
        _scaler.UnscaleGradients(parameters);
        int step = acc.OptimizerSteps + acc.SkippedSteps + 1;
        var (gradientsFinite, lossFinite) = _guard.BeforeStep(parameters, acc.StepLoss, _parallel, epoch, step);
        acc.StepLoss?.Dispose();
        acc.StepLoss = null;
        bool finite = gradientsFinite && lossFinite;
        float scale = _scaler.Scale;
        if (finite)
        {
            if (config.Train.MaxGradNorm > 0) nn.utils.clip_grad_norm_(parameters, config.Train.MaxGradNorm);
            optimizer.step();
            _guard.AfterStep(parameters, step);
            acc.OptimizerSteps++;
            OptimizerStepped?.Invoke(acc.OptimizerSteps);
        }
        else
        {
            acc.SkippedSteps++;
        }
        optimizer.zero_grad();
        _scaler.Update(finite);
        // Under loss scaling a finite loss with overflowing gradients is the scaler backing off while its scale is above 1.
        _guard.Count(finite, counts: !_scaler.Enabled || !lossFinite || scale <= 1,
            !lossFinite && !gradientsFinite ? "the loss and the gradients were" : !lossFinite ? "the loss was" : "the gradients were", epoch);
    }

    private void PoisonGradient()
    {
        using var _ = no_grad();
        using var grad = weights.Parameters[0].grad ?? throw new InvalidOperationException("the first trainable parameter has no gradient");
        using var flat = grad.view(-1);
        using var first = flat[0];
        first.fill_(float.NaN);
    }

    /// <summary>
    /// The epoch's running sums. Loss, KL and clip fraction stay on the device and are read once, after the last
    /// micro-step: reading them every micro-step (<c>item()</c>) would make the host wait for the device each time
    /// and stall CUDA's queue. The sums are float64, as the host's were, over the same float32 values.
    /// </summary>
    private sealed class Accumulator : IDisposable
    {
        public Tensor? Loss, Kl, ClipFrac, KlToBase, StepLoss;
        public int Micro, OptimizerSteps, SkippedSteps;
        public double? FirstRatioDeviation;

        /// <summary>Adds <paramref name="value"/> (a scalar tensor) to <paramref name="sum"/>, outside any dispose scope.</summary>
        public void Add(ref Tensor? sum, Tensor value)
        {
            using var v = value.detach().to(ScalarType.Float64);
            if (sum is null)
            {
                sum = v.clone();
                sum.DetachFromDisposeScope();
            }
            else
            {
                sum.add_(v);
            }
        }

        /// <summary>The sum's value (0 when nothing was added).</summary>
        public static double Read(Tensor? sum) => sum?.item<double>() ?? 0;

        public void Dispose()
        {
            Loss?.Dispose();
            Kl?.Dispose();
            ClipFrac?.Dispose();
            KlToBase?.Dispose();
            StepLoss?.Dispose();
        }
    }
}
