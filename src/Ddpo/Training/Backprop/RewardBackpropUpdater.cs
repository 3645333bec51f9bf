using System.Diagnostics;
using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Distributed;
using Ddpo.Policies;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Runs;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// An epoch of reward backpropagation (<c>algorithm</c> = <c>draft</c>, <c>draft_lv</c>, <c>refl</c>, <c>alignprop</c>):
/// there is no separate sampling phase, since each micro-batch of <c>train.batch_size</c> prompts is sampled with the
/// gradients its algorithm needs (<see cref="RewardBackprop"/>) and its loss backpropagated at once. The epoch has the
/// DDPO epoch's samples (<c>sample.batch_size x sample.num_batches_per_epoch</c>, prompts drawn as the sampler draws
/// them, in groups of <c>sample.group_size</c>); <c>train.gradient_accumulation_steps</c> micro-batches make an optimizer
/// step, taken as <see cref="PolicyUpdater"/> takes it: unscale, the <see cref="NonFiniteGuard"/>'s check, clipping to
/// <c>train.max_grad_norm</c>, AdamW. All draws come from (seed, epoch, micro-batch), so a resumed run repeats them.
/// With several processes each step's micro-batches are shared out as <see cref="PolicyUpdater"/> shares them, the
/// gradients summed before the step: since a micro-batch's draws depend only on its global index, N processes train
/// exactly what one process would, N times faster.
/// </summary>
internal sealed class RewardBackpropUpdater
{
    private readonly IDiffusionPolicy _policy;
    private readonly DdpoConfig _config;
    private readonly IPromptSource _prompts;
    private readonly TrainableWeights _weights;
    private readonly optim.Optimizer _optimizer;
    private readonly LossScaler _scaler;
    private readonly ITrainingObserver _observer;
    private readonly NonFiniteGuard _guard;
    private readonly RewardBackprop _algorithm;
    private readonly DataParallel _parallel;
    private readonly IReadOnlyList<IRewardFunction> _watches;

    /// <summary>The updater of a run; <paramref name="reward"/> must be differentiable (<see cref="DifferentiableRewards.Require"/>).</summary>
    public RewardBackpropUpdater(IDiffusionPolicy policy, DdpoConfig config, IPromptSource prompts, IRewardFunction reward,
        TrainableWeights weights, optim.Optimizer optimizer, LossScaler scaler, ITrainingObserver observer, DataParallel parallel)
    {
        _parallel = parallel;
        _policy = policy;
        _config = config;
        _prompts = prompts;
        _weights = weights;
        _optimizer = optimizer;
        _scaler = scaler;
        _observer = observer;
        _guard = new NonFiniteGuard(config.Train.MaxSkippedSteps);
        _algorithm = new RewardBackprop(policy, config, DifferentiableRewards.Require(reward, config), weights.Parameters);
        _watches = reward is WatchedReward watched ? watched.Watches : [];
    }

    /// <summary>Called after each optimizer step taken, with the number taken in this epoch so far (the EMA's update).</summary>
    internal Action<int>? OptimizerStepped { get; init; }

    /// <summary>Trains epoch <paramref name="epoch"/>; returns its metrics line (the rewards are those of the trained images).</summary>
    public EpochMetrics RunEpoch(int epoch, double evalSeconds)
    {
        var clock = Stopwatch.StartNew();
        var s = _config.Sample;
        var t = _config.Train;
        // The epoch's global samples and micro-batches; an optimizer step covers accumulation x processes of them.
        int samples = s.BatchSize * s.NumBatchesPerEpoch * _parallel.Group.Size;
        int micro = t.BatchSize;
        int batches = samples / micro;
        int perStep = t.GradientAccumulationSteps * _parallel.Group.Size;
        var mine = Enumerable.Range(0, (batches + perStep - 1) / perStep)
            .Select(step => _parallel.Shard(step * perStep, Math.Min((step + 1) * perStep, batches))).ToArray();
        var rng = new Random(SeedMix.DeriveInt(_config.Seed, epoch, "prompts"));
        var drawnSamples = Enumerable.Range(0, samples / s.GroupSize).Select(_ => _prompts.Next(rng))
            .SelectMany(p => Enumerable.Repeat(p, s.GroupSize)).ToArray();
        var drawn = drawnSamples.Select(p => p.Prompt).ToArray();
        var rewards = new float[samples];
        // The watch rewards of the trained images, as the sampler's epochs log them (zeros where another rank scores).
        var watched = _watches.ToDictionary(w => WatchedReward.DetailPrefix + w.Name, _ => new float[samples]);
        double lossSum = 0;
        int optimizerSteps = 0, skipped = 0;
        Tensor? stepLoss = null;
        using var conditionings = new ConditioningCache(_policy);
        _policy.Denoiser.train();
        _observer.PhaseStarted(epoch, "training", mine.Sum(r => r.End - r.Start));
        int done = 0;
        try
        {
            foreach (var (start, end) in mine)
            {
                for (int b = start; b < end; b++)
                {
                    using var scope = NewDisposeScope();
                    var prompts = drawn[(b * micro)..((b + 1) * micro)];
                    using var generator = new Generator(SeedMix.Derive(_config.Seed, epoch, "backprop", b));
                    using var condition = conditionings.Get(prompts);
                    Conditioning? unconditional = null;
                    if (_policy.NeedsUnconditional(_algorithm.Options))
                    {
                        using var one = conditionings.Get([""]);
                        unconditional = one.Expand(prompts.Length);
                    }
                    using (unconditional)
                    {
                        var loss = _algorithm.Loss(new BackpropBatch(prompts, condition, unconditional, generator));
                        _scaler.Scaled(loss.Loss / perStep).backward();
                        Array.Copy(loss.Rewards.to(ScalarType.Float32).cpu().data<float>().ToArray(), 0, rewards, b * micro, micro);
                        ScoreWatches(loss.Images, drawnSamples[(b * micro)..((b + 1) * micro)], watched, b * micro);
                        var detached = loss.Loss.detach().to(ScalarType.Float64);
                        lossSum += detached.item<double>();
                        if (stepLoss is null)
                        {
                            stepLoss = detached.clone();
                            stepLoss.DetachFromDisposeScope();
                        }
                        else
                        {
                            stepLoss.add_(detached);
                        }
                    }
                    _observer.PhaseProgress("training", ++done);
                }
                bool taken = StepOptimizer(stepLoss, epoch, optimizerSteps + skipped + 1);
                stepLoss?.Dispose();
                stepLoss = null;
                if (taken)
                {
                    optimizerSteps++;
                    OptimizerStepped?.Invoke(optimizerSteps);
                }
                else skipped++;
            }
            _guard.Flush(epoch);
            if (_parallel.Group.Size > 1) lossSum = SumOverRanks(lossSum, [rewards, .. watched.Values]);
        }
        finally
        {
            stepLoss?.Dispose();
            _guard.Discard();
            _policy.Denoiser.eval();
            _optimizer.zero_grad();
        }
        var stats = new UpdateStats(lossSum / Math.Max(batches, 1), 0, 0, 0, optimizerSteps, batches, clock.Elapsed.TotalSeconds, samples,
            skipped, _scaler.Scale);
        return EpochMetricsBuilder.Build(epoch, drawn, rewards, watched, samples, 0, stats, 0, 0, evalSeconds, t.LearningRate);
    }

    /// <summary>Each watch reward of <paramref name="images"/> into <paramref name="watched"/> from <paramref name="offset"/>.</summary>
    private void ScoreWatches(Tensor images, PromptSample[] prompts, Dictionary<string, float[]> watched, int offset)
    {
        if (_watches.Count == 0) return;
        var batch = new RewardBatch(images, prompts.Select(p => p.Prompt).ToArray(), prompts.Select(p => p.Metadata).ToArray());
        foreach (var watch in _watches)
        {
            // Waited for here: no await inside the micro-batch's dispose scope (scopes belong to a thread).
            var scores = watch.ScoreAsync(batch, CancellationToken.None).GetAwaiter().GetResult().Rewards;
            if (scores.Length != prompts.Length)
            {
                throw new InvalidOperationException($"watch reward '{watch.Name}' returned {scores.Length} scores for {prompts.Length} images");
            }
            Array.Copy(scores, 0, watched[WatchedReward.DetailPrefix + watch.Name], offset, scores.Length);
        }
    }

    /// <summary>One optimizer step on the accumulated gradients (as <see cref="PolicyUpdater"/>'s); false when it was skipped.</summary>
    private bool StepOptimizer(Tensor? stepLoss, int epoch, int step)
    {
        var parameters = _weights.Parameters;
        _parallel.SumGradients(parameters);
        _scaler.UnscaleGradients(parameters);
        var (gradientsFinite, lossFinite) = _guard.BeforeStep(parameters, stepLoss, _parallel, epoch, step);
        bool finite = gradientsFinite && lossFinite;
        float scale = _scaler.Scale;
        if (finite)
        {
            if (_config.Train.MaxGradNorm > 0) nn.utils.clip_grad_norm_(parameters, _config.Train.MaxGradNorm);
            _optimizer.step();
            _guard.AfterStep(parameters, step);
        }
        _optimizer.zero_grad();
        _scaler.Update(finite);
        _guard.Count(finite, counts: !_scaler.Enabled || !lossFinite || scale <= 1,
            !lossFinite && !gradientsFinite ? "the loss and the gradients were" : !lossFinite ? "the loss was" : "the gradients were", epoch);
        return finite;
    }

    /// <summary>
    /// The loss summed over the ranks, and each of <paramref name="perSample"/> (the rewards, the watch rewards) summed in
    /// place: each rank filled only its micro-batches' places.
    /// </summary>
    private double SumOverRanks(double lossSum, IReadOnlyList<float[]> perSample)
    {
        var values = perSample.SelectMany(a => a.Select(v => (double)v)).Append(lossSum).ToArray();
        _parallel.Sum(values);
        int at = 0;
        foreach (var array in perSample)
        {
            for (int i = 0; i < array.Length; i++) array[i] = (float)values[at++];
        }
        return values[^1];
    }
}
