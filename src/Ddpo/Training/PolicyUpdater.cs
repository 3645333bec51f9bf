using System.Diagnostics;
using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Schedulers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>Averages of the training phase of one epoch.</summary>
/// <param name="Loss">Mean loss over micro-steps.</param>
/// <param name="ApproxKl">Mean of 0.5 (logp - logp_old)^2 (DDPO-IS; 0 otherwise).</param>
/// <param name="ClipFrac">Fraction of clipped ratios (DDPO-IS; 0 otherwise).</param>
/// <param name="FirstRatioMaxDeviation">max |ratio - 1| at the first micro-step of the epoch, before any update (0 when exact).</param>
/// <param name="OptimizerSteps">Number of optimizer steps taken.</param>
/// <param name="MicroSteps">Number of forward/backward passes.</param>
/// <param name="Seconds">Wall time of the phase.</param>
/// <param name="Samples">Samples trained on (for sparse RWR, those at or above the percentile).</param>
/// <param name="SkippedSteps">Optimizer steps skipped because their loss or gradients were not finite (<see cref="NonFiniteGuard"/>, any precision).</param>
/// <param name="LossScale">The loss scale at the end of the phase (1 without loss scaling).</param>
/// <param name="KlMean">Mean KL between the policy's and the base model's transitions over the trained steps
/// (<c>train.kl_coef</c> &gt; 0; null otherwise).</param>
internal sealed record UpdateStats(double Loss, double ApproxKl, double ClipFrac, double FirstRatioMaxDeviation,
    int OptimizerSteps, int MicroSteps, double Seconds, int Samples, int SkippedSteps = 0, double LossScale = 1, double? KlMean = null);

/// <summary>
/// The training phase of a DDPO epoch: re-evaluates each recorded action's log-probability under the
/// current policy (same guidance as sampling) and takes policy-gradient steps: DDPO-IS (clipped
/// importance ratio, as ddpo-pytorch), DDPO-SF (REINFORCE, one step per sampling round), or
/// reward-weighted regression on the denoising loss (RWR, sparse RWR: <see cref="RewardWeightedRegression"/>).
/// With an enabled <see cref="LossScaler"/> (fp16 models) the backward pass runs on the scaled loss and the
/// gradients are unscaled before clipping, as accelerate does. In every precision a step whose loss or gradients are
/// not finite is skipped, and non-finite weights or too many skips in a row stop the run (<see cref="NonFiniteGuard"/>).
/// With a <see cref="ReferencePolicy"/> (<c>train.kl_coef</c> &gt; 0) each trained step's loss adds kl_coef times the KL
/// to the base model's transition. Only the steps of the epoch's SDE window are trained (<see cref="SdeWindow"/>).
/// </summary>
internal sealed class PolicyUpdater(TextToImagePipeline pipeline, TrainableWeights weights, optim.Optimizer optimizer,
    DdpoConfig config, ITrainingObserver observer, LossScaler? scaler = null, ReferencePolicy? reference = null,
    DataParallel? parallel = null)
{
    private readonly LossScaler _scaler = scaler ?? new LossScaler(enabled: false);
    private readonly DataParallel _parallel = parallel ?? DataParallel.Single;
    private readonly NonFiniteGuard _guard = new(config.Train.MaxSkippedSteps);

    /// <summary>
    /// A testing aid: called with (epoch, local micro-step of the epoch) after each micro-step's backward pass; when it
    /// returns true a NaN is written into the first trainable gradient, as a faulty kernel would.
    /// </summary>
    internal Func<int, int, bool>? GradientFault { get; init; }

    /// <summary>
    /// Trains on <paramref name="samples"/> with per-sample <paramref name="advantages"/> (for RWR: the loss
    /// weights, <see cref="RwrWeights"/>; for sparse RWR the kept samples with weight 1).
    /// </summary>
    public UpdateStats Train(EpochSamples samples, float[] advantages, int epoch)
    {
        var clock = Stopwatch.StartNew();
        var t = config.Train;
        bool reinforce = config.Algorithm == TrainingAlgorithm.DdpoSf;
        bool rwr = config.Algorithm is TrainingAlgorithm.Rwr or TrainingAlgorithm.RwrSparse;
        pipeline.Scheduler.SetTimesteps(config.Sample.NumSteps);
        // RWR regresses on the final samples and needs no log-probabilities, so every step counts for it.
        int policySteps = rwr ? samples.Steps : PolicySteps(samples.Steps);
        var trained = rwr ? new StepWindow(0, policySteps) : SdeWindow.TrainedSteps(config.Sample, epoch, policySteps);
        int trainSteps = Math.Max(1, (int)(trained.Width * t.TimestepFraction));
        int batches = (samples.Count + t.BatchSize - 1) / t.BatchSize;
        // An optimizer step covers the same global micro-batches on any number of processes (the per-process
        // accumulation times the processes; DDPO-SF: the whole epoch); each rank trains on its part of them and the
        // gradients are summed, so every loss is divided by the step's global micro-step count.
        int batchesPerStep = reinforce ? batches : t.GradientAccumulationSteps * _parallel.Group.Size;
        int microPerStep = batchesPerStep * trainSteps;
        int localMicro = 0;
        for (int first = 0; first < batches; first += batchesPerStep)
        {
            var (start, end) = _parallel.Shard(first, Math.Min(first + batchesPerStep, batches));
            localMicro += (end - start) * trainSteps;
        }
        using var acc = new Accumulator();
        pipeline.Unet.train();
        observer.PhaseStarted(epoch, "training", t.NumInnerEpochs * localMicro);
        int done = 0;
        try
        {
            for (int inner = 0; inner < t.NumInnerEpochs; inner++)
            {
                var gen = new Generator(SeedMix.Derive(config.Seed, epoch, "shuffle", inner));
                var order = randperm(samples.Count, generator: gen).data<long>().ToArray();
                using var shuffled = samples.Select(order);
                var shuffledAdv = order.Select(i => advantages[i]).ToArray();
                // RWR regresses final samples only: the steps need no reordering.
                using var permuted = rwr ? null : PermuteSteps(shuffled, trained, gen);
                for (int first = 0; first < batches; first += batchesPerStep)
                {
                    var (mine, mineEnd) = _parallel.Shard(first, Math.Min(first + batchesPerStep, batches));
                    for (int b = first; b < Math.Min(first + batchesPerStep, batches); b++)
                    {
                        int start = b * t.BatchSize, count = Math.Min(t.BatchSize, samples.Count - start);
                        for (int j = 0; j < trainSteps; j++)
                        {
                            if (b < mine || b >= mineEnd)
                            {
                                // Another rank trains on this micro-batch; RWR still draws its noise so that the
                                // shared generator stays where one process would have it.
                                if (rwr) RewardWeightedRegression.SkipDraws(pipeline, shuffled.NextLatents[TensorIndex.Slice(start, start + count), shuffled.Steps - 1].shape, gen);
                                continue;
                            }
                            using var scope = NewDisposeScope();
                            var loss = rwr
                                ? RwrLoss(shuffled, shuffledAdv, start, count, gen)
                                : PolicyLossAt(permuted!, shuffledAdv, start, count, j, reinforce, acc);
                            _scaler.Scaled(loss / microPerStep).backward();
                            if (GradientFault?.Invoke(epoch, acc.Micro) == true) PoisonGradient();
                            acc.Add(ref acc.Loss, loss);
                            acc.Add(ref acc.StepLoss, loss);
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
            pipeline.Unet.eval();
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
            reference is null ? null : sums[5] / n);
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
    /// The leading steps of each trajectory that are DDPO actions (stochastic, with a log-probability). A last step
    /// with zero variance (diffusers' with set_alpha_to_one = true under sample.final_step = "diffusers", or
    /// timestep 0 when the scheduler's steps_offset is 0) is part of the environment, not an action, and is left
    /// out. timestep_fraction is a fraction of these steps.
    /// </summary>
    private int PolicySteps(int recordedSteps)
    {
        if (recordedSteps != pipeline.Scheduler.Timesteps.Length)
        {
            throw new InvalidOperationException($"the trajectories have {recordedSteps} steps but sample.num_steps is {config.Sample.NumSteps}");
        }
        int stochastic = pipeline.Scheduler.StochasticStepCount(config.Sample.FinalStep);
        if (stochastic == 0)
        {
            throw new ConfigException($"sample.final_step = \"{config.Sample.FinalStep.ToConfigName()}\" with sample.num_steps = {config.Sample.NumSteps} " +
                $"leaves no stochastic step to train on: the only step (timestep {pipeline.Scheduler.Timesteps[0]}) has zero variance " +
                "(with set_alpha_to_one = true diffusers' last step goes to alpha_cumprod 1; with steps_offset = 0 the last timestep is 0); " +
                "use more steps" + (config.Sample.FinalStep == DdimFinalStep.Diffusers ? " or sample.final_step = \"ddpo\"" : ""));
        }
        return stochastic;
    }

    private Tensor PolicyLossAt(EpochSamples s, float[] adv, int start, int count, int j, bool reinforce, Accumulator acc)
    {
        var rows = TensorIndex.Slice(start, start + count);
        var latents = s.Latents[rows, j];
        var next = s.NextLatents[rows, j];
        var timesteps = s.Timesteps[rows, j];
        var oldLogProb = s.LogProbs[rows, j];
        var embeds = s.PromptEmbeds[rows];
        Tensor? negative = config.Train.Cfg ? s.NegativeEmbeds?[rows] : null;
        var eps = pipeline.PredictNoise(latents, timesteps, embeds, negative, config.Sample.GuidanceScale);
        var step = pipeline.Scheduler.Step(eps, timesteps, latents, config.Sample.Eta, prevSample: next, finalStep: config.Sample.FinalStep);
        var advantages = tensor(adv[start..(start + count)], device: latents.device);
        if (acc.FirstRatioDeviation is null)
        {
            using var _ = no_grad();
            acc.FirstRatioDeviation = (step.LogProb - oldLogProb).exp().sub(1).abs().max().item<float>();
        }
        Tensor loss;
        if (reinforce)
        {
            loss = PolicyLoss.DdpoSf(step.LogProb, advantages, config.Train.AdvClipMax);
        }
        else
        {
            var (isLoss, kl, clipFrac) = PolicyLoss.DdpoIs(step.LogProb, oldLogProb, advantages, config.Train.ClipRange, config.Train.AdvClipMax);
            acc.Add(ref acc.Kl, kl);
            acc.Add(ref acc.ClipFrac, clipFrac);
            loss = isLoss;
        }
        if (reference is not null)
        {
            var baseMean = reference.Mean(latents, timesteps, next, embeds, negative, config.Sample.GuidanceScale, config.Sample.Eta, config.Sample.FinalStep);
            var klToBase = ReferencePolicy.Kl(step.Mean, baseMean, step.Std).mean();
            acc.Add(ref acc.KlToBase, klToBase);
            loss = loss + config.Train.KlCoef * klToBase;
        }
        return loss;
    }

    private Tensor RwrLoss(EpochSamples s, float[] weights, int start, int count, Generator gen)
    {
        // jannerm/ddpo regresses the guided prediction when it trains with guidance (train_cfg), with the
        // sampling guidance scale, and divides the weighted sum by the batch size.
        var rows = TensorIndex.Slice(start, start + count);
        var x0 = s.NextLatents[rows, s.Steps - 1];
        Tensor? negative = config.Train.Cfg ? s.NegativeEmbeds?[rows] : null;
        var w = tensor(weights[start..(start + count)]);
        return RewardWeightedRegression.Loss(pipeline, x0, s.PromptEmbeds[rows], negative, config.Sample.GuidanceScale,
            w, config.Train.BatchSize, gen);
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
