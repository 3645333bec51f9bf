using Ddpo.Base;
using Ddpo.Rewards;
using System.Security.Cryptography;
using System.Text;
using Ddpo.Models.Loading;

namespace Ddpo.Config;

/// <summary>
/// The full configuration of a DDPO run. Keys keep kvablack/ddpo-pytorch's names and defaults
/// (<c>config/base.py</c>); values are layered defaults → <c>--preset</c> → config file → <c>--set</c>
/// by <see cref="Load"/>, which then derives the per-process sizes from the stated totals
/// (<c>sample.samples_per_epoch</c>, <c>train.total_batch_size</c>) for the run's number of processes
/// and validates the result.
/// </summary>
public sealed class DdpoConfig
{
    /// <summary>The <c>reward_fn</c> value meaning "the weighted sum of the <c>rewards</c> table".</summary>
    public const string WeightedRewardName = RewardNames.Weighted;

    private readonly Dictionary<string, string> _origins = [];

    /// <summary><c>run_name</c>: the run folder name ("" = generated from the date and time).</summary>
    public string RunName { get; set; } = "";

    /// <summary><c>seed</c> for all random choices.</summary>
    public int Seed { get; set; } = 42;

    /// <summary><c>num_epochs</c>: rounds of sampling followed by training.</summary>
    public int NumEpochs { get; set; } = 100;

    /// <summary><c>save_freq</c>: epochs between checkpoints.</summary>
    public int SaveFreq { get; set; } = 20;

    /// <summary><c>num_checkpoint_limit</c>: the newest checkpoints kept.</summary>
    public int NumCheckpointLimit { get; set; } = 5;

    /// <summary><c>use_lora</c>: train LoRA adapters instead of the full UNet.</summary>
    public bool UseLora { get; set; } = true;

    /// <summary>
    /// <c>algorithm</c>: <c>ddpo_is</c>, <c>ddpo_sf</c>, <c>rwr</c>, <c>rwr_sparse</c>, <c>grpo</c> or <c>nft</c>; reward
    /// backpropagation with <c>draft</c>, <c>draft_lv</c>, <c>refl</c> or <c>alignprop</c>.
    /// </summary>
    public TrainingAlgorithm Algorithm { get; set; } = TrainingAlgorithm.DdpoIs;

    /// <summary><c>prompt_fn</c>: a prompt source name (see <see cref="Prompts.PromptSources"/>).</summary>
    public string PromptFn { get; set; } = "imagenet_animals";

    /// <summary><c>prompt_fn_kwargs</c>: arguments of the prompt source (string, long, double, bool or list values).</summary>
    public Dictionary<string, object> PromptFnKwargs { get; set; } = [];

    /// <summary><c>reward_fn</c>: a reward name, or <see cref="WeightedRewardName"/> to use <see cref="Rewards"/>.</summary>
    public string RewardFn { get; set; } = "jpeg_compressibility";

    /// <summary>
    /// <c>watch_rewards</c>: comma-separated reward names computed on every epoch's images and logged as
    /// <c>watch_NAME_mean</c> but not optimised (over-optimisation monitor), e.g. <c>"image_contrast,colorfulness"</c>.
    /// </summary>
    public string WatchRewards { get; set; } = "";

    /// <summary>The names in <see cref="WatchRewards"/>.</summary>
    public IReadOnlyList<string> WatchRewardNames =>
        WatchRewards.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary><c>rewards</c>: <c>name = weight</c> components, used when <see cref="RewardFn"/> is <c>"weighted"</c>.</summary>
    public Dictionary<string, double> Rewards { get; set; } = [];

    /// <summary>
    /// <c>reward_mix</c>: how the components of a weighted reward become advantages. <c>"reward_aggr"</c> (default,
    /// Flow-GRPO's <c>multi_score</c>): the weighted sum of the rewards is normalised. <c>"advantage_aggr"</c>
    /// (MixGRPO's <c>--multi_reward_mix advantage_aggr</c>): each component is normalised within its group, then the
    /// advantages are summed with the weights, so that a reward with a large spread does not drown the others.
    /// </summary>
    public string RewardMix { get; set; } = RewardAggregation;

    /// <summary>The default <see cref="RewardMix"/>: normalise the weighted sum.</summary>
    public const string RewardAggregation = "reward_aggr";

    /// <summary>The <see cref="RewardMix"/> that normalises each component within its group, then sums.</summary>
    public const string AdvantageAggregation = "advantage_aggr";

    /// <summary>Every reward a run computes: <c>reward_fn</c> (or the <c>rewards</c> components) and the <c>watch_rewards</c>.</summary>
    public IReadOnlyList<string> RewardNamesUsed() =>
        (RewardFn == WeightedRewardName ? Rewards.Keys : new[] { RewardFn }.AsEnumerable()).Concat(WatchRewardNames).Distinct().ToArray();

    /// <summary><c>device</c>: <c>cpu</c>, <c>cuda</c>, <c>cuda:N</c> or <c>auto</c>.</summary>
    public string Device { get; set; } = "auto";

    /// <summary><c>model</c>: a Stable Diffusion folder (diffusers layout) or <c>"builtin"</c>.</summary>
    public string Model { get; set; } = "builtin";

    /// <summary>The <c>[sample]</c> section.</summary>
    public SampleConfig Sample { get; set; } = new();

    /// <summary>The <c>[train]</c> section.</summary>
    public TrainConfig Train { get; set; } = new();

    /// <summary>The <c>[per_prompt_stat_tracking]</c> section.</summary>
    public PerPromptStatTrackingConfig PerPromptStatTracking { get; set; } = new();

    /// <summary>The <c>[lora]</c> section.</summary>
    public LoraConfig Lora { get; set; } = new();

    /// <summary>The <c>[rwr]</c> section.</summary>
    public RwrConfig Rwr { get; set; } = new();

    /// <summary>The <c>[nft]</c> section (DiffusionNFT, <c>algorithm = "nft"</c>).</summary>
    internal NftConfig Nft { get; set; } = new();

    /// <summary>The <c>[logging]</c> section.</summary>
    public LoggingConfig Logging { get; set; } = new();

    /// <summary>The <c>[pretrained]</c> section.</summary>
    public PretrainedConfig Pretrained { get; set; } = new();

    /// <summary>
    /// The <c>[draft]</c> section (reward backpropagation: DRaFT's K and LV, the reward scale, checkpointing). The three
    /// reward-backpropagation sections are set through their keys (files, presets, <c>--set</c>), not typed from outside.
    /// </summary>
    internal DraftConfig Draft { get; set; } = new();

    /// <summary>The <c>[refl]</c> section (ReFL's range of gradient steps).</summary>
    internal ReflConfig Refl { get; set; } = new();

    /// <summary>The <c>[alignprop]</c> section (AlignProp's randomised truncation).</summary>
    internal AlignPropConfig AlignProp { get; set; } = new();

    /// <summary>The <c>[reward]</c> section (settings of the learned and remote rewards).</summary>
    public RewardConfig Reward { get; set; } = new();

    /// <summary>Timesteps trained on per trajectory: <c>int(sample.num_steps * train.timestep_fraction)</c>, as ddpo-pytorch.</summary>
    public int NumTrainTimesteps => (int)(Sample.NumSteps * Train.TimestepFraction);

    /// <summary>
    /// The number of processes (devices) the per-process sizes were derived for: the <c>worldSize</c> given to
    /// <see cref="Load"/>, 1 by default. Not a key: the same config file runs on any number of processes.
    /// </summary>
    public int WorldSize { get; internal set; } = 1;

    /// <summary>Samples per epoch and per optimizer step, over all processes and per process.</summary>
    public SampleCounts Counts
    {
        get
        {
            int perProcessSteps = Train.BatchSize * Train.GradientAccumulationSteps;
            int stepsPerInnerEpoch = Algorithm == TrainingAlgorithm.DdpoSf || perProcessSteps == 0
                ? 1 // DDPO-SF takes one step per sampling round (one inner epoch)
                : Math.Max(1, Sample.BatchSize * Sample.NumBatchesPerEpoch / perProcessSteps);
            return new SampleCounts(WorldSize, Sample.BatchSize, Sample.NumBatchesPerEpoch, Train.BatchSize,
                Train.GradientAccumulationSteps, stepsPerInnerEpoch * Train.NumInnerEpochs);
        }
    }

    /// <summary>
    /// Builds a config: defaults, then the preset (if any), then the file (<c>.toml</c> or <c>.json</c>,
    /// if any), then the <c>--set KEY=VALUE</c> overrides (values read as TOML; a bare word is a string);
    /// derives the per-process sizes from the stated totals for <paramref name="worldSize"/> processes, and
    /// validates it. Every problem is a <see cref="ConfigException"/> naming the key and where it was set.
    /// </summary>
    /// <remarks>
    /// A total and the per-process count it decides (<c>sample.samples_per_epoch</c> and
    /// <c>sample.num_batches_per_epoch</c>; <c>train.total_batch_size</c> and <c>train.gradient_accumulation_steps</c>)
    /// follow the layers: the one set in the later layer wins (a per-process count set over a preset's total turns the
    /// total off, as 0), and setting both in one layer is an error.
    /// </remarks>
    public static DdpoConfig Load(string? file, string? preset, IEnumerable<string>? setOverrides, int worldSize = 1)
    {
        var config = Layered(file, preset, setOverrides);
        config.Resolve(worldSize);
        return config;
    }

    /// <summary>
    /// The layers of <see cref="Load"/> applied, but no per-process size derived and nothing cross-checked: for
    /// deciding on another layer from a layered value (e.g. whether the model is the built-in one).
    /// </summary>
    public static DdpoConfig Layered(string? file, string? preset, IEnumerable<string>? setOverrides)
    {
        var config = new DdpoConfig();
        if (!string.IsNullOrEmpty(preset))
        {
            ConfigPresets.Apply(config, preset);
        }
        if (!string.IsNullOrEmpty(file))
        {
            var layer = new ConfigLayer(config, file);
            layer.ApplyTree(ReadFile(file));
            layer.Finish();
        }
        var sets = setOverrides?.ToList() ?? [];
        if (sets.Count > 0)
        {
            var layer = new ConfigLayer(config, "--set");
            foreach (var s in sets)
            {
                layer.ApplyOverride(s);
            }
            layer.Finish();
        }
        return config;
    }

    /// <summary>Parses TOML or JSON text (by <paramref name="format"/>: <c>toml</c> or <c>json</c>) over the defaults and validates it.</summary>
    public static DdpoConfig Parse(string text, string format = "toml", string source = "<text>")
    {
        var config = new DdpoConfig();
        var layer = new ConfigLayer(config, source);
        layer.ApplyTree(format == "json" ? ConfigValues.ParseJson(text, source) : ConfigValues.ParseToml(text, source));
        layer.Finish();
        config.Resolve(1);
        return config;
    }

    private void Resolve(int worldSize)
    {
        CheckKeys(); // first, so that the totals are shared among valid batch sizes
        PerProcessSizes.Derive(this, worldSize);
        Validate();
    }

    private static Dictionary<string, object> ReadFile(string file)
    {
        if (!File.Exists(file))
        {
            throw new ConfigException($"{file}: config file not found");
        }
        var text = Utf8Text.ReadFile(file, message => new ConfigException(message));
        return Path.GetExtension(file).ToLowerInvariant() switch
        {
            ".toml" => ConfigValues.ParseToml(text, file),
            ".json" => ConfigValues.ParseJson(text, file),
            var ext => throw new ConfigException($"{file}: unsupported config format '{ext}' (expected .toml or .json)"),
        };
    }

    /// <summary>
    /// Checks every value and the relations between them (ddpo-pytorch's batch-size assertions);
    /// throws a <see cref="ConfigException"/> naming the key and where it was set.
    /// </summary>
    public void Validate()
    {
        CheckKeys();
        if (RewardFn == WeightedRewardName && Rewards.Count == 0)
        {
            throw Problem("rewards", $"reward_fn = \"{WeightedRewardName}\" needs at least one entry in rewards = {{ name = weight }}");
        }
        if (RewardFn != WeightedRewardName && Rewards.Count > 0)
        {
            throw Problem("rewards", $"a rewards table is only used with reward_fn = \"{WeightedRewardName}\" (reward_fn is \"{RewardFn}\")");
        }
        if (RewardMix == AdvantageAggregation && (RewardFn != WeightedRewardName || Algorithm != TrainingAlgorithm.Grpo))
        {
            throw Problem("reward_mix", $"\"{AdvantageAggregation}\" normalises each component of a weighted reward within its group: it needs " +
                $"reward_fn = \"{WeightedRewardName}\" and algorithm = \"grpo\" (reward_fn is \"{RewardFn}\", algorithm \"{Algorithm.ToConfigName()}\")");
        }
        if (NumTrainTimesteps < 1)
        {
            throw Problem("train.timestep_fraction",
                $"{ConfigSchema.Fmt(Train.TimestepFraction)} of sample.num_steps = {Sample.NumSteps} leaves no timestep to train on");
        }
        if (PerPromptStatTracking.Enabled && PerPromptStatTracking.MinCount > PerPromptStatTracking.BufferSize)
        {
            throw Problem("per_prompt_stat_tracking.min_count",
                $"{PerPromptStatTracking.MinCount} exceeds buffer_size = {PerPromptStatTracking.BufferSize}, so per-prompt statistics would never be used");
        }
        if (Sample.BatchSize % Train.BatchSize != 0)
        {
            throw Problem("train.batch_size",
                $"sample.batch_size = {Sample.BatchSize} must be a multiple of train.batch_size = {Train.BatchSize}");
        }
        GroupPolicyChecks.Validate(this);
        BackpropKeys.Validate(this);
        var counts = Counts;
        if (counts.SamplesPerEpochPerProcess % Sample.GroupSize != 0)
        {
            throw Problem("sample.group_size",
                $"samples per epoch per process ({counts.SamplesPerEpochPerProcess}) must be a multiple of sample.group_size = {Sample.GroupSize}");
        }
        if (counts.SamplesPerEpochPerProcess % counts.SamplesPerStepPerProcess != 0)
        {
            throw Train.TotalBatchSize > 0
                ? Problem(SampleCounts.TotalBatchSizeKey,
                    $"samples per epoch ({counts.SamplesPerEpoch}) must be a multiple of the samples per optimizer step " +
                    $"(train.total_batch_size = {Train.TotalBatchSize})")
                : Problem(SampleCounts.GradientAccumulationStepsKey,
                    $"samples per epoch (sample.batch_size * sample.num_batches_per_epoch = {counts.SamplesPerEpochPerProcess} per process) must be a multiple of " +
                    $"train.batch_size * train.gradient_accumulation_steps = {counts.SamplesPerStepPerProcess}");
        }
    }

    private void CheckKeys()
    {
        foreach (var key in ConfigSchema.Keys)
        {
            var problem = key.Check(key.Get(this));
            if (problem is not null) throw Problem(key.Path, problem);
        }
    }

    internal ConfigException Problem(string key, string message)
    {
        var origin = OriginOf(key);
        return new ConfigException(origin is null ? $"{key}: {message}" : $"{origin}: {key}: {message}");
    }

    /// <summary>Where a key was last set (a preset, a file path or <c>--set KEY</c>), or null for a default.</summary>
    public string? OriginOf(string key) => _origins.GetValueOrDefault(key);

    internal void SetOrigin(string key, string origin) => _origins[key] = origin;

    /// <summary>
    /// The fully resolved config as TOML (every key, ddpo-pytorch names), readable by <see cref="Load"/>. A per-process
    /// count derived from a stated total is written as a comment with its derivation, so the file runs on any number of processes.
    /// </summary>
    public string ToToml() => WriteToml(withDerived: true);

    private string WriteToml(bool withDerived)
    {
        var sb = new StringBuilder();
        sb.Append("# DDPO run configuration (fully resolved)\n");
        string? section = null;
        foreach (var key in ConfigSchema.Keys)
        {
            int dot = key.Path.LastIndexOf('.');
            var keySection = dot < 0 ? null : key.Path[..dot];
            if (keySection != section)
            {
                sb.Append('\n').Append('[').Append(keySection).Append("]\n");
                section = keySection;
            }
            var name = dot < 0 ? key.Path : key.Path[(dot + 1)..];
            if (PerProcessSizes.DerivedNote(this, key.Path) is { } note)
            {
                if (withDerived)
                {
                    sb.Append("# ").Append(ConfigValues.Key(name)).Append(" = ").Append(ConfigValues.ToToml(key.Get(this)))
                        .Append("  (per process: ").Append(note).Append(")\n");
                }
                continue;
            }
            sb.Append(ConfigValues.Key(name)).Append(" = ").Append(ConfigValues.ToToml(key.Get(this))).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// SHA-256 (hex) of <see cref="ToToml"/> without the derived per-process counts: identifies the settings a
    /// checkpoint was made with, the same on any number of processes.
    /// </summary>
    public string ComputeHash() => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(WriteToml(withDerived: false))));
}
