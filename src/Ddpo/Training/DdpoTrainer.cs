using System.Diagnostics;
using Ddpo.Config;
using Ddpo.Distributed;
using Ddpo.Imaging;
using Ddpo.Models.Loading;
using Ddpo.Policies;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Runtime;
using Ddpo.Runs;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// DDPO training, end to end: prompts -> sampling (trajectories) -> rewards -> advantages ->
/// policy update -> metrics, fixed-seed images and checkpoints, epoch after epoch. A run can be
/// killed at any point and resumed from its last checkpoint with the same results as an
/// uninterrupted run (all randomness is derived from the seed and the epoch).
/// </summary>
internal sealed class DdpoTrainer : IDisposable
{
    private readonly DdpoConfig _config;
    private readonly IDiffusionPolicy _policy;
    private readonly RunFolder _run;
    private readonly IPromptSource _prompts;
    private readonly IRewardFunction _reward;
    private readonly TrainableWeights _weights;
    private readonly OptimizerHelper _optimizer;
    private readonly PerPromptStatTracker? _tracker;
    private readonly LossScaler _scaler;
    private readonly ITrainingObserver _observer;
    private readonly RunOutputs _outputs;
    private readonly ReferencePolicy? _reference;
    /// <summary>The EMA of the trainable weights (<c>train.ema</c>), or null.</summary>
    private readonly EmaWeights? _ema;
    /// <summary>DiffusionNFT's old policy (<c>algorithm = "nft"</c>), or null.</summary>
    private readonly NftOldPolicy? _nftOld;
    private int _startEpoch;
    private long _globalStep;
    private readonly DataParallel _parallel;
    /// <summary>Only rank 0 writes the run folder (metrics, images, checkpoints; the report and TensorBoard are writers, see <see cref="RunOutputs"/>).</summary>
    private bool Writes => _parallel.Group.Rank == 0;

    /// <summary>The resolved configuration.</summary>
    public DdpoConfig Config => _config;

    /// <summary>The trainable weights.</summary>
    internal TrainableWeights Weights => _weights;

    /// <summary>The EMA of the trainable weights (<c>train.ema</c>), or null when off.</summary>
    internal EmaWeights? Ema => _ema;

    /// <summary>DiffusionNFT's old policy (<c>algorithm = "nft"</c>), or null.</summary>
    internal NftOldPolicy? NftOld => _nftOld;

    /// <summary>The dynamic loss scaler of the backward pass (disabled unless the UNet runs in fp16 or <c>train.loss_scaling = "dynamic"</c>).</summary>
    internal LossScaler Scaler => _scaler;

    /// <summary>The run folder.</summary>
    internal RunFolder Run => _run;

    /// <summary>The first epoch this trainer will run (after a resume, the one after the checkpoint).</summary>
    public int StartEpoch => _startEpoch;

    /// <summary>The AdamW optimizer of the trainable weights.</summary>
    internal OptimizerHelper Optimizer => _optimizer;

    /// <summary>A testing aid passed to the <see cref="PolicyUpdater"/>: (epoch, micro-step) -> write a NaN into a gradient.</summary>
    internal Func<int, int, bool>? GradientFault { get; set; }

    /// <summary>
    /// Prepares a run of <paramref name="policy"/>: writes the resolved config, attaches trainable weights and the
    /// optimizer, and with <paramref name="resume"/> restores the newest checkpoint of <paramref name="runDirectory"/>.
    /// The prompts are <paramref name="prompts"/> (null: <c>prompt_fn</c>); <paramref name="outputs"/> chooses what is
    /// written (null: <see cref="RunOutputs.All"/>; the report and TensorBoard are <see cref="RunOutputs.Writers"/>);
    /// <paramref name="processGroup"/> is the processes this one trains with (null: one process; docs/distributed.md).
    /// </summary>
    public DdpoTrainer(DdpoConfig config, IDiffusionPolicy policy, string runDirectory, bool resume,
        IRewardFunction reward, ITrainingObserver? observer = null, IPromptSource? prompts = null, RunOutputs? outputs = null,
        Distributed.IProcessGroup? processGroup = null)
    {
        config.Validate();
        _config = config;
        _parallel = processGroup is null ? DataParallel.Single : new DataParallel(processGroup);
        _policy = policy;
        _observer = observer ?? NullTrainingObserver.Instance;
        _outputs = outputs ?? RunOutputs.All;
        _run = new RunFolder(runDirectory);
        _prompts = prompts ?? PromptSources.Create(config.PromptFn, config.PromptFnKwargs);
        _reward = reward;
        NftStrategy.Check(config, policy);
        // A reward backpropagation run needs a differentiable reward: say so before anything is loaded or written.
        if (config.Algorithm.IsRewardBackprop()) DifferentiableRewards.Require(reward, config);
        _weights = TrainableWeights.For(config, policy);
        _reference = ReferencePolicy.Create(config, policy, _weights); // the initial weights, before any restore
        _ema = EmaWeights.For(config, _weights);
        _nftOld = config.Algorithm == TrainingAlgorithm.Nft ? new NftOldPolicy(_weights.Parameters, config.Nft.DecayType) : null;
        var t = config.Train;
        _optimizer = optim.AdamW(_weights.Parameters, t.LearningRate, t.AdamBeta1, t.AdamBeta2, t.AdamEpsilon, t.AdamWeightDecay);
        _scaler = LossScaler.For(t, policy.DType);
        _tracker = config.PerPromptStatTracking.Enabled
            ? new PerPromptStatTracker(config.PerPromptStatTracking.BufferSize, config.PerPromptStatTracking.MinCount)
            : null;

        var configText = config.ToToml();
        if (resume && Checkpoint.Latest(_run) is { } latest)
        {
            var state = RestoreCheckpoint(latest);
            // The optimizer state brings back the learning rate it was saved with; the run's config decides it (so that
            // --resume --set train.learning_rate=... takes effect, e.g. after a run stopped on non-finite training).
            foreach (var group in _optimizer.ParamGroups) group.LearningRate = t.LearningRate;
            if (state.ConfigHash != config.ComputeHash())
            {
                _observer.Message($"note: the configuration differs from the one checkpoint {latest.Path} was made with");
            }
            _tracker?.Clear();
            if (_tracker is not null && state.StatTrackerJson is not null)
            {
                try
                {
                    _tracker = PerPromptStatTracker.FromJson(state.StatTrackerJson);
                }
                catch (FormatException e)
                {
                    throw new ModelLoadException($"{latest.StateFile}: field 'stat_tracker': {e.Message}", e);
                }
            }
            _startEpoch = state.Epoch + 1;
            _globalStep = state.GlobalStep;
            if (Writes) MetricsLog.TruncateAfter(_run.MetricsFile, state.Epoch);
            _observer.Message($"resumed from {latest.Path} (epoch {state.Epoch} done, {state.GlobalStep} optimizer steps)");
        }
        else
        {
            // Rank 0 alone checks: it may already have created metrics.jsonl when a slower rank gets here.
            if (Writes && File.Exists(_run.MetricsFile) && !resume)
            {
                throw new ArgumentException($"{_run.Root}: this run folder already has metrics.jsonl; pass --resume to continue it or choose another --run-dir");
            }
            // Resuming a run that stopped before its first checkpoint starts it again from epoch 0.
            if (Writes) MetricsLog.TruncateAfter(_run.MetricsFile, -1);
            _startEpoch = 0;
        }
        if (Writes) File.WriteAllText(_run.ConfigFile, configText);
    }

    /// <summary>Runs the remaining epochs. Cancelling stops after the current phase; nothing written is lost.</summary>
    public async Task RunAsync(CancellationToken ct = default)
    {
        var group = _parallel.Group;
        var backprop = _config.Algorithm.IsRewardBackprop()
            ? new RewardBackpropUpdater(_policy, _config, _prompts, _reward, _weights, _optimizer, _scaler, _observer, _parallel)
            {
                OptimizerStepped = _ema is null ? null : n => _ema.Step(_globalStep + n),
            }
            : null;
        var sampler = new EpochSampler(_policy, _config, _prompts, _reward, _observer, group.Rank, group.Size);
        // Reward backpropagation has its own update (no strategy over recorded transitions).
        var updater = backprop is not null ? null
            : new PolicyUpdater(_policy, UpdateStrategies.For(_config, _policy, _tracker, _reference, _nftOld), _weights, _optimizer, _config, _observer, _scaler, _parallel)
            {
                GradientFault = GradientFault,
                // Flow-GRPO's ema.step(params, global_step) after the step, with the run's count of steps taken.
                OptimizerStepped = _ema is null ? null : n => _ema.Step(_globalStep + n),
            };
        using var metrics = Writes ? new MetricsLog(_run.MetricsFile) : null;
        for (int epoch = _startEpoch; epoch < _config.NumEpochs; epoch++)
        {
            ct.ThrowIfCancellationRequested();
            double evalSeconds = Writes ? MaybeWriteEvalImages(epoch) : 0;
            if (backprop is not null)
            {
                // Reward backpropagation samples inside its update: no sampling phase, no stored trajectories.
                EpochMetrics backpropLine;
                using (NewDisposeScope())
                {
                    try
                    {
                        backpropLine = backprop.RunEpoch(epoch, evalSeconds);
                    }
                    catch (NonFiniteStepException e)
                    {
                        throw Stopped(e);
                    }
                }
                _globalStep += (long)backpropLine.OptimizerSteps;
                WeightsChecksum.Verify(group, _weights.Parameters, epoch);
                FinishEpoch(epoch, backpropLine, metrics);
                continue;
            }
            var sampled = await SampleOrResumeAsync(sampler, epoch, ct).ConfigureAwait(false);
            using var share = sampled.Samples;
            // With several processes every rank gets the whole epoch: advantages and metrics are the epoch's.
            using var gathered = group.Size > 1 ? EpochGather.Gather(group, share) : null;
            var samples = gathered ?? share;
            _parallel.MaybeInjectFault(epoch);
            var finite = RewardChecks.Finite(samples.Rewards);
            if (finite.NonFiniteCount > 0)
            {
                _observer.Message($"epoch {epoch}: {finite.NonFiniteCount} sample(s) with NaN/infinite reward dropped from the update");
            }
            using var kept = finite.NonFiniteCount > 0 ? samples.Select(finite.FiniteIndices.Select(i => (long)i).ToArray()) : null;
            var train = kept ?? samples;
            UpdateStats stats;
            using (NewDisposeScope())
            {
                // Everything the update makes (graphs, shuffles, statistics) dies with the scope; the weights
                // and the optimizer's moments were made outside it and live on.
                try
                {
                    stats = updater!.Update(train, epoch);
                }
                catch (NonFiniteStepException e)
                {
                    throw Stopped(e);
                }
            }
            if (stats.SkippedSteps > 0)
            {
                _observer.Message($"epoch {epoch}: skipped {stats.SkippedSteps} optimizer step(s) whose loss or gradients were not finite " +
                    $"(weights and AdamW state untouched{(_scaler.Enabled ? $"; loss scale now {stats.LossScale:G6}" : "")})");
            }
            _globalStep += stats.OptimizerSteps;
            _nftOld?.Update(_globalStep);
            WeightsChecksum.Verify(group, _weights.Parameters, epoch);
            var line = EpochMetricsBuilder.Build(epoch, train, samples.Count, finite.NonFiniteCount, stats,
                sampled.SamplingSeconds, sampled.RewardSeconds, evalSeconds, _config.Train.LearningRate, stats.TargetMetrics ?? UpdateTargets.NoMetrics);
            FinishEpoch(epoch, line, metrics);
        }
        if (Writes && _outputs.ImageGrids && (_startEpoch < _config.NumEpochs || !Directory.Exists(_run.EpochImagesDir(_config.NumEpochs))))
        {
            WriteEvalImages(_config.NumEpochs);
        }
        _observer.RunFinished();
        if (!Writes) return;
        using var exportScope = NewDisposeScope();
        ExportWeights(_run.WeightsFile(_weights.ExportFileName));
    }

    /// <summary>Writes an epoch's metrics line, reports it, and checkpoints when <c>save_freq</c> (or the last epoch) says so.</summary>
    private void FinishEpoch(int epoch, EpochMetrics line, MetricsLog? metrics)
    {
        metrics?.Append(line);
        NativeHeap.Trim();
        _observer.EpochFinished(line);
        bool last = epoch == _config.NumEpochs - 1;
        if (Writes && _outputs.Checkpoints && (last || (_config.SaveFreq > 0 && (epoch + 1) % _config.SaveFreq == 0)))
        {
            using var scope = NewDisposeScope();
            var checkpoint = SaveCheckpoint(epoch);
            _observer.Message($"checkpoint {checkpoint.Path}");
        }
    }

    /// <summary>
    /// The run stops on non-finite training: nothing of this epoch is saved, so the newest checkpoint is the last good
    /// one; the message names it and what to try.
    /// </summary>
    private TrainingStoppedException Stopped(NonFiniteStepException e)
    {
        var t = _config.Train;
        var latest = Checkpoint.Latest(_run);
        var where = latest is null
            ? "No checkpoint was written before this: the run starts again from epoch 0 (the same command with --resume does that in this folder)."
            : $"Nothing non-finite was saved: the newest checkpoint, {latest.Path} (epoch {latest.Epoch}), is the last good one.";
        var resume = latest is null ? "" : $" Then continue from {latest.Path} with the same command plus --resume (e.g. --resume --set train.learning_rate=...).";
        var message = $"training stopped in epoch {e.Epoch}: {e.What}. {where} " +
            $"Try a lower train.learning_rate (now {t.LearningRate:G6}), a smaller train.max_grad_norm (now {t.MaxGradNorm:G6}), " +
            $"fp32 (pretrained.dtype = \"fp32\"{(_policy.DType == ScalarType.Float32 ? ", as now" : "")}), " +
            $"and `ddpo doctor` to check this machine's gradients.{resume}";
        return new TrainingStoppedException(message, e.Epoch, latest?.Path, e);
    }

    /// <summary>Checkpoints the completed <paramref name="epoch"/>: weights, optimizer, loss scaler, stat tracker, config hash.</summary>
    private Checkpoint SaveCheckpoint(int epoch) => TrainingCheckpoint.Save(_run, _config.NumCheckpointLimit, epoch, _globalStep,
        _weights, _optimizer, _scaler, _tracker?.ToJson(), _config.ComputeHash(), WeightCopies(), ExportWeights);

    /// <summary>Loads <paramref name="checkpoint"/> into the weights, their copies, the optimizer and the loss scaler; returns its state.</summary>
    private TrainingState RestoreCheckpoint(Checkpoint checkpoint) => TrainingCheckpoint.Restore(checkpoint, _weights, _optimizer, _scaler, WeightCopies());

    /// <summary>The copies of the weights a checkpoint holds beside them: the EMA and DiffusionNFT's old policy.</summary>
    private List<(string Prefix, ParameterCopy Copy)> WeightCopies()
    {
        var copies = new List<(string, ParameterCopy)>();
        if (_ema is not null) copies.Add((EmaWeights.CheckpointPrefix, _ema.Average));
        if (_nftOld is not null) copies.Add((NftOldPolicy.CheckpointPrefix, _nftOld.Weights));
        return copies;
    }

    /// <summary>Writes the fine-tuned weights for other tools: the EMA when <c>train.ema</c> is on (Flow-GRPO's save_ckpt), else the live ones.</summary>
    private void ExportWeights(string path)
    {
        using var ema = _ema?.Applied();
        _weights.Export(path);
    }

    private async Task<SampledEpoch> SampleOrResumeAsync(EpochSampler sampler, int epoch, CancellationToken ct)
    {
        try
        {
            if (_parallel.Group.Size == 1 && PendingSamples.TryLoad(_run, epoch, _policy.Device) is { } pending)
            {
                _observer.Message($"epoch {epoch}: scoring the {pending.Samples.Count} samples kept from the interrupted run");
                using var images = pending.Images;
                var scored = await sampler.ScoreAsync(epoch, pending.Samples, images, ct).ConfigureAwait(false);
                PendingSamples.Delete(_run, epoch);
                return scored;
            }
            // DiffusionNFT samples with its old policy (train_nft_sd3.py: set_adapter("old") around the rollouts); the
            // live weights are back before anything below checkpoints them.
            using (_nftOld?.Applied())
            {
                return await sampler.SampleAsync(epoch, ct).ConfigureAwait(false);
            }
        }
        catch (RewardFailedException failure) when (_parallel.Group.Size == 1)
        {
            // With several processes a rank's reward failure ends the job (MPI_Abort, rank named); the epoch is
            // sampled again on --resume from the last checkpoint.
            using (failure.Samples)
            using (failure.Images)
            {
                var kept = PendingSamples.Save(_run, epoch, failure.Samples, failure.Images);
                // The weights have not changed since the end of the previous epoch: checkpoint them so that
                // --resume continues exactly here, whatever save_freq is.
                if (epoch > 0 && Checkpoint.Latest(_run)?.Epoch != epoch - 1)
                {
                    using var scope = NewDisposeScope();
                    SaveCheckpoint(epoch - 1);
                }
                throw new RewardFailedException(epoch, failure.Samples, failure.Images, new IOException(
                    $"{failure.InnerException?.Message} — the epoch's {failure.Samples.Count} samples are kept in {kept}; " +
                    "once the reward works again, run the same command with --resume to score them and continue", failure.InnerException));
            }
        }
    }

    private double MaybeWriteEvalImages(int epoch)
    {
        int every = Math.Max(1, _config.Logging.ImageEvery);
        if (!_outputs.ImageGrids || epoch % every != 0 || _config.Logging.NumEvalImages <= 0) return 0;
        return WriteEvalImages(epoch);
    }

    /// <summary>The prompts of the fixed-seed images: spread evenly over the prompt set.</summary>
    public IReadOnlyList<string> EvalPrompts()
    {
        var all = _prompts.All;
        int k = Math.Min(_config.Logging.NumEvalImages, all.Count);
        return Enumerable.Range(0, k).Select(i => all[(int)((long)i * all.Count / k)]).ToArray();
    }

    private double WriteEvalImages(int epoch)
    {
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        var prompts = EvalPrompts();
        if (prompts.Count == 0) return 0;
        _observer.PhaseStarted(epoch, "eval images", _config.Sample.NumSteps);
        // The same noise every epoch: the images show how the policy changes, not the sampling noise.
        using var generator = new Generator(SeedMix.Derive(_config.Seed, 0, "eval"));
        // With train.ema the images show the average, as Flow-GRPO's eval (copy_ema_to ... copy_temp_to).
        using var ema = _ema?.Applied();
        var images = PolicySampling.Images(_policy, prompts, _config.Sample.ToSamplingOptions(), generator, new Progress<int>(i => _observer.PhaseProgress("eval images", i)));
        var dir = _run.EpochImagesDir(epoch);
        AtomicFile.WriteFolder(dir, temp =>
        {
            for (int i = 0; i < prompts.Count; i++)
            {
                ImageTensor.SavePng(images[i], Path.Combine(temp, RunFolder.EvalImageFileName(i)));
            }
            using var grid = ImageTensor.Grid(images, Math.Min(prompts.Count, 8));
            ImageTensor.SavePng(grid, Path.Combine(temp, RunFolder.GridFileName));
        });
        File.WriteAllText(_run.EvalPromptsFile, System.Text.Json.JsonSerializer.Serialize(prompts));
        return clock.Elapsed.TotalSeconds;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _optimizer.Dispose();
        _reference?.Dispose();
        _ema?.Dispose();
        _nftOld?.Dispose();
    }
}
