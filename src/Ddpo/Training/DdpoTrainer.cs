using System.Diagnostics;
using Ddpo.Config;
using Ddpo.Imaging;
using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Runtime;
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
public sealed class DdpoTrainer : IDisposable
{
    private readonly DdpoConfig _config;
    private readonly TextToImagePipeline _pipeline;
    private readonly RunDirectory _run;
    private readonly IPromptSource _prompts;
    private readonly IRewardFunction _reward;
    private readonly TrainableWeights _weights;
    private readonly OptimizerHelper _optimizer;
    private readonly PerPromptStatTracker? _tracker;
    private readonly TrainingCheckpoints _checkpoints;
    private readonly LossScaler _scaler;
    private readonly ITrainingObserver _observer;
    private readonly RunOutputs _outputs;
    private readonly ReferencePolicy? _reference;
    private IReadOnlyDictionary<string, object?> _advantageMetrics = new Dictionary<string, object?>();
    private int _startEpoch;
    private long _globalStep;
    private readonly DataParallel _parallel;
    /// <summary>Only rank 0 writes the run folder (metrics, images, checkpoints; the report and TensorBoard are writers, see <see cref="RunOutputs"/>).</summary>
    private bool Writes => _parallel.Group.Rank == 0;

    /// <summary>The resolved configuration.</summary>
    public DdpoConfig Config => _config;

    /// <summary>The pipeline being fine-tuned.</summary>
    public TextToImagePipeline Pipeline => _pipeline;

    /// <summary>The trainable weights.</summary>
    internal TrainableWeights Weights => _weights;

    /// <summary>The dynamic loss scaler of the backward pass (disabled unless the UNet runs in fp16 or <c>train.loss_scaling = "dynamic"</c>).</summary>
    public LossScaler Scaler => _scaler;

    /// <summary>The run folder.</summary>
    internal RunDirectory Run => _run;

    /// <summary>The first epoch this trainer will run (after a resume, the one after the checkpoint).</summary>
    public int StartEpoch => _startEpoch;

    /// <summary>The AdamW optimizer of the trainable weights.</summary>
    internal OptimizerHelper Optimizer => _optimizer;

    /// <summary>A testing aid passed to the <see cref="PolicyUpdater"/>: (epoch, micro-step) -> write a NaN into a gradient.</summary>
    internal Func<int, int, bool>? GradientFault { get; set; }

    /// <summary>
    /// Prepares a run: writes the resolved config, attaches trainable weights and the optimizer, and
    /// with <paramref name="resume"/> restores the newest checkpoint of <paramref name="runDirectory"/>.
    /// </summary>
    public DdpoTrainer(DdpoConfig config, TextToImagePipeline pipeline, string runDirectory, bool resume,
        IRewardFunction reward, ITrainingObserver? observer = null)
        : this(config, pipeline, runDirectory, resume, reward, observer, prompts: null, outputs: null)
    {
    }

    /// <summary>
    /// As the constructor above, with the prompts given as an object (null: <c>prompt_fn</c>), a choice of what is
    /// written (null: <see cref="RunOutputs.All"/>; the report and TensorBoard are <see cref="RunOutputs.Writers"/>),
    /// and the processes this one trains with (null: one process; see docs/distributed.md).
    /// </summary>
    public DdpoTrainer(DdpoConfig config, TextToImagePipeline pipeline, string runDirectory, bool resume,
        IRewardFunction reward, ITrainingObserver? observer, IPromptSource? prompts, RunOutputs? outputs,
        Distributed.IProcessGroup? processGroup = null)
    {
        config.Validate();
        _config = config;
        _parallel = processGroup is null ? DataParallel.Single : new DataParallel(processGroup);
        _pipeline = pipeline;
        _observer = observer ?? NullTrainingObserver.Instance;
        _outputs = outputs ?? RunOutputs.All;
        _run = new RunDirectory(runDirectory);
        _prompts = prompts ?? PromptSources.Create(config.PromptFn, config.PromptFnKwargs);
        _reward = reward;
        _weights = config.UseLora
            ? TrainableWeights.WithLora(pipeline.Unet, config.Lora.Rank, config.Lora.Alpha, config.Seed, config.Lora.Init)
            : TrainableWeights.FullUnet(pipeline.Unet);
        _reference = ReferencePolicy.Create(config, pipeline, _weights); // the initial weights, before any restore
        var t = config.Train;
        _optimizer = optim.AdamW(_weights.Parameters, t.LearningRate, t.AdamBeta1, t.AdamBeta2, t.AdamEpsilon, t.AdamWeightDecay);
        _scaler = LossScaler.For(t, pipeline.Unet.DType);
        _tracker = config.PerPromptStatTracking.Enabled
            ? new PerPromptStatTracker(config.PerPromptStatTracking.BufferSize, config.PerPromptStatTracking.MinCount)
            : null;
        _checkpoints = new TrainingCheckpoints(_run, config.NumCheckpointLimit);

        var configText = config.ToToml();
        if (resume && _checkpoints.Latest() is { } latest)
        {
            var state = _checkpoints.Restore(latest, _weights, _optimizer, _scaler);
            // The optimizer state brings back the learning rate it was saved with; the run's config decides it (so that
            // --resume --set train.learning_rate=... takes effect, e.g. after a run stopped on non-finite training).
            foreach (var group in _optimizer.ParamGroups) group.LearningRate = t.LearningRate;
            if (state.ConfigHash != config.ComputeHash())
            {
                _observer.Message($"note: the configuration differs from the one checkpoint {latest.Path} was made with");
            }
            _tracker?.Clear();
            if (_tracker is not null && state.StatTracker is not null)
            {
                try
                {
                    _tracker = PerPromptStatTracker.FromJson(state.StatTracker);
                }
                catch (FormatException e)
                {
                    throw new ModelLoadException($"{Path.Combine(latest.Path, CheckpointStore.StateFile)}: field 'stat_tracker': {e.Message}", e);
                }
            }
            _startEpoch = state.Epoch + 1;
            _globalStep = state.GlobalStep;
            if (Writes) MetricsWriter.TruncateAfter(_run.MetricsFile, state.Epoch);
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
            if (Writes) MetricsWriter.TruncateAfter(_run.MetricsFile, -1);
            _startEpoch = 0;
        }
        if (Writes) File.WriteAllText(_run.ConfigFile, configText);
    }

    /// <summary>Runs the remaining epochs. Cancelling stops after the current phase; nothing written is lost.</summary>
    public async Task RunAsync(CancellationToken ct = default)
    {
        var group = _parallel.Group;
        var sampler = new EpochSampler(_pipeline, _config, _prompts, _reward, _observer, group.Rank, group.Size);
        var updater = new PolicyUpdater(_pipeline, _weights, _optimizer, _config, _observer, _scaler, _reference, _parallel) { GradientFault = GradientFault };
        using var metrics = Writes ? new MetricsWriter(_run.Root) : null;
        for (int epoch = _startEpoch; epoch < _config.NumEpochs; epoch++)
        {
            ct.ThrowIfCancellationRequested();
            double evalSeconds = Writes ? MaybeWriteEvalImages(epoch) : 0;
            using var share = await SampleOrResumeAsync(sampler, epoch, ct).ConfigureAwait(false);
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
                    stats = Update(updater, train, epoch);
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
            WeightsChecksum.Verify(group, _weights.Parameters, epoch);
            var line = EpochMetrics.Build(epoch, train, samples.Count, finite.NonFiniteCount, stats,
                sampler.SamplingSeconds, sampler.RewardSeconds, evalSeconds, _config.Train.LearningRate, _advantageMetrics);
            metrics?.Write(line.Values);
            NativeHeap.Trim();
            _observer.EpochFinished(line);
            bool last = epoch == _config.NumEpochs - 1;
            if (Writes && _outputs.Checkpoints && (last || (_config.SaveFreq > 0 && (epoch + 1) % _config.SaveFreq == 0)))
            {
                using var scope = NewDisposeScope();
                var dir = _checkpoints.Save(epoch, _globalStep, _weights, _optimizer, _scaler, _tracker?.ToJson(), _config.ComputeHash());
                _observer.Message($"checkpoint {dir}");
            }
        }
        if (Writes && _outputs.ImageGrids && (_startEpoch < _config.NumEpochs || !Directory.Exists(_run.EpochImagesDir(_config.NumEpochs))))
        {
            WriteEvalImages(_config.NumEpochs);
        }
        _observer.RunFinished();
        if (!Writes) return;
        using var exportScope = NewDisposeScope();
        _weights.Export(Path.Combine(_run.Root, _weights.ExportFileName));
    }

    /// <summary>
    /// The run stops on non-finite training: nothing of this epoch is saved, so the newest checkpoint is the last good
    /// one; the message names it and what to try.
    /// </summary>
    private TrainingStoppedException Stopped(NonFiniteStepException e)
    {
        var t = _config.Train;
        var latest = _checkpoints.Latest();
        var where = latest is null
            ? "No checkpoint was written before this: the run starts again from epoch 0 (the same command with --resume does that in this folder)."
            : $"Nothing non-finite was saved: the newest checkpoint, {latest.Path} (epoch {latest.Epoch}), is the last good one.";
        var resume = latest is null ? "" : $" Then continue from {latest.Path} with the same command plus --resume (e.g. --resume --set train.learning_rate=...).";
        var message = $"training stopped in epoch {e.Epoch}: {e.What}. {where} " +
            $"Try a lower train.learning_rate (now {t.LearningRate:G6}), a smaller train.max_grad_norm (now {t.MaxGradNorm:G6}), " +
            $"fp32 (pretrained.dtype = \"fp32\"{(_pipeline.Unet.DType == ScalarType.Float32 ? ", as now" : "")}), " +
            $"and `ddpo doctor` to check this machine's gradients.{resume}";
        return new TrainingStoppedException(message, e.Epoch, latest?.Path, e);
    }

    private async Task<EpochSamples> SampleOrResumeAsync(EpochSampler sampler, int epoch, CancellationToken ct)
    {
        try
        {
            if (_parallel.Group.Size == 1 && PendingEpoch.TryLoad(_run, epoch, _pipeline.Device) is { } pending)
            {
                _observer.Message($"epoch {epoch}: scoring the {pending.Samples.Count} samples kept from the interrupted run");
                using var images = pending.Images;
                var scored = await sampler.ScoreAsync(epoch, pending.Samples, images, ct).ConfigureAwait(false);
                PendingEpoch.Delete(_run, epoch);
                return scored;
            }
            return await sampler.SampleAsync(epoch, ct).ConfigureAwait(false);
        }
        catch (RewardFailedException failure) when (_parallel.Group.Size == 1)
        {
            // With several processes a rank's reward failure ends the job (MPI_Abort, rank named); the epoch is
            // sampled again on --resume from the last checkpoint.
            using (failure.Samples)
            using (failure.Images)
            {
                var kept = PendingEpoch.Save(_run, epoch, failure.Samples, failure.Images);
                // The weights have not changed since the end of the previous epoch: checkpoint them so that
                // --resume continues exactly here, whatever save_freq is.
                if (epoch > 0 && _checkpoints.Latest()?.Epoch != epoch - 1)
                {
                    using var scope = NewDisposeScope();
                    _checkpoints.Save(epoch - 1, _globalStep, _weights, _optimizer, _scaler, _tracker?.ToJson(), _config.ComputeHash());
                }
                throw new RewardFailedException(epoch, failure.Samples, failure.Images, new IOException(
                    $"{failure.InnerException?.Message} — the epoch's {failure.Samples.Count} samples are kept in {kept}; " +
                    "once the reward works again, run the same command with --resume to score them and continue", failure.InnerException));
            }
        }
    }

    /// <summary>
    /// The training phase on the epoch's finite-reward samples: DDPO with per-prompt (or global)
    /// advantages, GRPO with group-relative ones (<see cref="EpochAdvantages"/>); RWR with softmax weights over
    /// all of them; sparse RWR on those at or above the percentile.
    /// </summary>
    private UpdateStats Update(PolicyUpdater updater, EpochSamples samples, int epoch)
    {
        _advantageMetrics = new Dictionary<string, object?>();
        if (samples.Count == 0) return new UpdateStats(double.NaN, 0, 0, 0, 0, 0, 0, 0, LossScale: _scaler.Scale);
        switch (_config.Algorithm)
        {
            case TrainingAlgorithm.Rwr:
                return updater.Train(samples, RwrWeights.Softmax(samples.Rewards, _config.Rwr.Temperature), epoch);
            case TrainingAlgorithm.RwrSparse:
                using (var kept = samples.Select(RwrWeights.AtOrAbovePercentile(samples.Rewards, _config.Rwr.Percentile)))
                {
                    return updater.Train(kept, Enumerable.Repeat(1f, kept.Count).ToArray(), epoch);
                }
            default:
                (var advantages, _advantageMetrics) = EpochAdvantages.Compute(_config, samples, _tracker);
                return updater.Train(samples, advantages, epoch);
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
        var options = new SamplingOptions { NumSteps = _config.Sample.NumSteps, Eta = _config.Sample.Eta, GuidanceScale = _config.Sample.GuidanceScale, FinalStep = _config.Sample.FinalStep };
        // The same noise every epoch: the images show how the policy changes, not the sampling noise.
        using var generator = new Generator(SeedMix.Derive(_config.Seed, 0, "eval"));
        using var result = _pipeline.Sample(prompts, options, generator, progress: new Progress<int>(i => _observer.PhaseProgress("eval images", i)));
        var dir = _run.EpochImagesDir(epoch);
        AtomicFile.WriteFolder(dir, temp =>
        {
            for (int i = 0; i < prompts.Count; i++)
            {
                ImageTensor.SavePng(result.Images[i], Path.Combine(temp, $"{i:D2}.png"));
            }
            using var grid = ImageTensor.Grid(result.Images, Math.Min(prompts.Count, 8));
            ImageTensor.SavePng(grid, Path.Combine(temp, "grid.png"));
        });
        File.WriteAllText(_run.EvalPromptsFile, System.Text.Json.JsonSerializer.Serialize(prompts));
        return clock.Elapsed.TotalSeconds;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _optimizer.Dispose();
        _reference?.Dispose();
    }
}
