using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Runtime;
using Ddpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo;

/// <summary>
/// The front door: one DDPO run, set up from <see cref="DdpoTrainingOptions"/> (the config layered with the built-in
/// model's sizing where it applies, the pipeline loaded on the device in the dtype, the reward and prompts built or
/// taken as given, the writers of <see cref="DdpoTrainingOptions.Outputs"/> opened as observers) and recorded in <c>RUN/config.toml</c> as it will
/// run: model, device, dtype, prompts, reward and watch rewards (objects given in code as <c>code:NAME</c>).
/// <c>ddpo train</c> is a thin layer over it.
/// </summary>
/// <example>
/// <code>
/// using var run = DdpoRun.Create(new DdpoTrainingOptions
/// {
///     PromptList = ["a cat", "a dog"],
///     Reward = DelegateReward.PerImage("brightness", (image, prompt, metadata) => image.mean().item&lt;float&gt;()),
///     OnEpoch = m => Console.WriteLine($"epoch {m.Epoch}: {m.RewardMean:F4}"),
/// });
/// await run.RunAsync();
/// </code>
/// </example>
public sealed class DdpoRun : IDisposable
{
    private readonly IDisposable? _ownedReward;

    private DdpoRun(DdpoConfig config, string? preset, ITextToImagePipeline pipeline, IRewardFunction reward,
        IDisposable? ownedReward, DdpoTrainer trainer, Device device, ScalarType dtype)
    {
        Config = config;
        Preset = preset;
        Pipeline = pipeline;
        Reward = reward;
        _ownedReward = ownedReward;
        Trainer = trainer;
        Device = device;
        DType = dtype;
    }

    /// <summary>The config the run uses, as recorded in <c>RUN/config.toml</c>.</summary>
    public DdpoConfig Config { get; }

    /// <summary>The preset layers applied (e.g. <c>compressibility+builtin</c>); null when the config came from a file or object only.</summary>
    public string? Preset { get; }

    /// <summary>The pipeline being fine-tuned.</summary>
    public ITextToImagePipeline Pipeline { get; }

    /// <summary>The reward being optimised (with its watch rewards).</summary>
    public IRewardFunction Reward { get; }

    /// <summary>The trainer.</summary>
    internal DdpoTrainer Trainer { get; }

    /// <summary>The first epoch <see cref="RunAsync"/> runs (after a resume, the one after the checkpoint).</summary>
    public int StartEpoch => Trainer.StartEpoch;

    /// <summary>The device the model runs on.</summary>
    public Device Device { get; }

    /// <summary>The dtype of the frozen weights.</summary>
    public ScalarType DType { get; }

    /// <summary>The run folder.</summary>
    internal RunFolder Directory => Trainer.Run;

    /// <summary>Where the final LoRA (or, with <c>use_lora = false</c>, UNet) weights are written when <see cref="RunAsync"/> ends.</summary>
    public string WeightsFile => Trainer.Run.WeightsFile(Trainer.Weights.ExportFileName);

    /// <summary>Sets up a run (loads the model; nothing is trained yet).</summary>
    /// <exception cref="ConfigException">A setting is wrong; the message names the key and where it was set.</exception>
    /// <exception cref="ModelLoadException">The model folder is missing or malformed.</exception>
    /// <exception cref="ArgumentException">Options contradict each other, or the run folder has metrics and <see cref="DdpoTrainingOptions.Resume"/> is off.</exception>
    public static DdpoRun Create(DdpoTrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Runtime.CpuKernels.Apply(options.CpuKernels);
        var (config, preset) = ResolveConfig(options);
        var group = options.ProcessGroup ?? Distributed.SingleProcessGroup.Instance;
        var device = Distributed.ProcessGroups.DeviceForRank(TorchRuntime.ResolveDevice(options.Device ?? config.Device), group);
        var dtype = TorchRuntime.ResolveDType(options.DType ?? config.Pretrained.Dtype, device);
        config.Device = DeviceName(device);
        config.Pretrained.Dtype = TorchRuntime.DTypeName(dtype);

        var runDirectory = options.RunDirectory ?? DefaultRunDirectory(preset, options.ConfigFile);
        var metrics = RunFolder.At(runDirectory).MetricsFile;
        // Rank 0 alone checks: a slower rank could otherwise see the metrics rank 0 has just started writing.
        if (group.Rank == 0 && !options.Resume && File.Exists(metrics))
        {
            // Checked before anything is written or loaded: an existing run is never touched without Resume.
            throw new ArgumentException($"{Path.GetFullPath(runDirectory)}: this run folder already has metrics.jsonl; pass --resume to continue it or choose another --run-dir");
        }
        // Before anything is written: a run refused for wrong gradients leaves no folder behind.
        var gradientCheck = options.CheckGradients ? Diagnostics.GradientSelfCheck.EnsureOnce(device) : null;
        var prompts = RecordPrompts(options, config, runDirectory, writes: group.Rank == 0);
        var observer = Observers(options, runDirectory, writes: group.Rank == 0);
        if (gradientCheck is not null) observer.Message(gradientCheck);
        // TF32, cuDNN autotuning, fused attention: libtorch's global switches, set once on CUDA (see CudaPerformance).
        if (device.type == DeviceType.CUDA) observer.Message($"cuda: {CudaPerformance.Configure(device)}");
        var (reward, owned) = CreateReward(options, config, observer.Message);
        config.Validate();
        ITextToImagePipeline? pipeline = null;
        try
        {
            pipeline = PipelineLoader.FromPretrained(ModelFolder(config.Model), device, dtype, config.Sample.MaxSequenceLength);
            // Before anything is sampled: a reward that needs something of its prompts (vlm_strict_satisfaction's
            // questions and answers) refuses them now rather than giving every image NaN.
            var promptSource = prompts ?? PromptSources.Create(config.PromptFn, config.PromptFnKwargs);
            RewardPromptChecks.Check(reward, promptSource.Samples, $"prompt_fn '{config.PromptFn}'");
            var trainer = new DdpoTrainer(config, pipeline.Policy, runDirectory, options.Resume, reward, observer, promptSource, options.Outputs, group);
            return new DdpoRun(config, preset, pipeline, reward, owned, trainer, device, dtype);
        }
        catch
        {
            pipeline?.Dispose();
            owned?.Dispose();
            throw;
        }
    }

    /// <summary>Runs the remaining epochs and writes the final weights to <see cref="WeightsFile"/>. Cancelling stops after the current phase.</summary>
    public Task RunAsync(CancellationToken ct = default) => Trainer.RunAsync(ct);

    /// <summary>Writes the trained LoRA (or UNet) weights as safetensors to <paramref name="path"/>.</summary>
    public void ExportWeights(string path)
    {
        using var scope = NewDisposeScope();
        Trainer.Weights.Export(path);
    }

    /// <summary>
    /// The config <see cref="Create"/> would use, layered and validated, without loading anything: the preset (the
    /// built-in layer added when the model is the built-in one), file, <see cref="DdpoTrainingOptions.Set"/>, model and
    /// epochs, then <see cref="DdpoTrainingOptions.Configure"/>.
    /// </summary>
    public static (DdpoConfig Config, string? Preset) ResolveConfig(DdpoTrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        DdpoConfig config;
        string? preset;
        if (options.Config is not null)
        {
            if (options.Preset is not null || options.ConfigFile is not null || options.Set.Count > 0)
            {
                throw new ArgumentException("DdpoTrainingOptions: give either Config or Preset/ConfigFile/Set, not both");
            }
            config = options.Config;
            preset = null;
            if (options.Model is not null) config.Model = options.Model;
            if (options.Epochs is { } e) config.NumEpochs = e;
        }
        else
        {
            var sets = options.Set.ToList();
            if (options.Model is not null) sets.Add($"model={RunConfigLayers.Quote(options.Model)}");
            if (options.Epochs is { } e) sets.Add($"num_epochs={e}");
            (config, preset) = RunConfigLayers.Load(options.ConfigFile, options.Preset, sets, options.ProcessGroup?.Size ?? 1);
        }
        options.Configure?.Invoke(config);
        config.Validate();
        return (config, preset);
    }

    /// <summary>The folder of a <c>model</c> value: the built-in model's for <c>"builtin"</c>.</summary>
    public static string ModelFolder(string model) =>
        string.IsNullOrEmpty(model) || model == BuiltinModel.Name ? BuiltinModel.Directory : model;

    /// <summary>The name a config records for a device: <c>cpu</c> or <c>cuda:N</c>.</summary>
    public static string DeviceName(Device device) =>
        device.type == DeviceType.CUDA ? $"cuda:{Math.Max(0, device.index)}" : "cpu";

    /// <summary>The default run folder: <c>runs/PRESET-yyyyMMdd-HHmmss</c> (the config file's name without a preset).</summary>
    public static string DefaultRunDirectory(string? preset, string? configFile) =>
        Path.Combine("runs", $"{preset ?? Path.GetFileNameWithoutExtension(configFile) ?? "run"}-{DateTime.Now:yyyyMMdd-HHmmss}");

    /// <summary>
    /// The prompt source given in code, recorded in the config: a list is written to <c>RUN/prompts.txt</c> and
    /// recorded as <c>file:</c> (rebuildable; the source is read back from that file, so what ran is what is recorded);
    /// an object as <c>code:TYPE</c>. Null: the config's <c>prompt_fn</c>.
    /// </summary>
    private static IPromptSource? RecordPrompts(DdpoTrainingOptions options, DdpoConfig config, string runDirectory, bool writes)
    {
        if (options.PromptList is not null && options.Prompts is not null)
        {
            throw new ArgumentException("DdpoTrainingOptions: give either PromptList or Prompts, not both");
        }
        if (options.PromptList is { } list)
        {
            var bad = list.FirstOrDefault(p => string.IsNullOrWhiteSpace(p) || p.Contains('\n') || p.Contains('\r') || p != p.Trim());
            if (list.Count == 0 || bad is not null)
            {
                throw new ArgumentException(list.Count == 0
                    ? "DdpoTrainingOptions.PromptList: no prompts"
                    : $"DdpoTrainingOptions.PromptList: prompt '{bad}' is empty, spans lines or has leading/trailing spaces");
            }
            var file = RunFolder.At(runDirectory).PromptListFile;
            config.PromptFn = PromptSources.FilePrefix + file;
            config.PromptFnKwargs = [];
            // Only rank 0 writes the run folder; the other processes take the same list from memory.
            if (!writes) return new ListPromptSource(list);
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            AtomicFile.WriteAllText(file, string.Join("\n", list) + "\n");
            return PromptSources.Create(config.PromptFn);
        }
        if (options.Prompts is { } source)
        {
            config.PromptFn = CodeObjects.Name(source.GetType().Name);
            config.PromptFnKwargs = [];
            return source;
        }
        return null;
    }

    /// <summary>The reward (given in code, or built from <c>reward_fn</c>), with the watch rewards; records their names.</summary>
    private static (IRewardFunction Reward, IDisposable? Owned) CreateReward(DdpoTrainingOptions options, DdpoConfig config, Action<string> log)
    {
        if (options.WatchRewards is { } givenWatches)
        {
            config.WatchRewards = string.Join(",", givenWatches.Select(w => CodeObjects.Name(w.Name)));
        }
        if (options.Reward is null && options.WatchRewards is null)
        {
            var fromConfig = RewardFactory.CreateForTraining(config, log);
            return (fromConfig, fromConfig as IDisposable);
        }
        var registry = RewardFactory.CreateRegistry(config, log);
        IRewardFunction optimised;
        IDisposable? ownedOptimised = null;
        if (options.Reward is { } given)
        {
            config.RewardFn = CodeObjects.Name(given.Name);
            config.Rewards = [];
            optimised = given;
        }
        else
        {
            optimised = registry.Create(config.RewardFn, config.Rewards);
            ownedOptimised = optimised as IDisposable;
        }
        // Watches built here are disposed with the run; those given in code belong to the caller.
        var built = options.WatchRewards is null ? config.WatchRewardNames.Select(registry.Create).ToList() : [];
        var watches = options.WatchRewards ?? built;
        if (watches.Count == 0) return (optimised, ownedOptimised);
        return (new WatchedReward(optimised, watches), new Owned([ownedOptimised, .. built.OfType<IDisposable>()]));
    }

    private static CompositeTrainingObserver Observers(DdpoTrainingOptions options, string runDirectory, bool writes)
    {
        var list = options.Observers.ToList();
        if (options.OnEpoch is not null || options.OnMessage is not null)
        {
            list.Add(new DelegateTrainingObserver(options.OnEpoch, options.OnMessage));
        }
        CompositeTrainingObserver? composite = null;
        void Log(string message) => composite?.Message(message);
        if (writes) list.AddRange(options.Outputs.Writers.Select(w => w.Open(runDirectory, Log)));
        composite = new CompositeTrainingObserver(list);
        return composite;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Trainer.Dispose();
        Pipeline.Dispose();
        _ownedReward?.Dispose();
    }

    private sealed class Owned(IReadOnlyList<IDisposable?> items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items) item?.Dispose();
        }
    }
}
