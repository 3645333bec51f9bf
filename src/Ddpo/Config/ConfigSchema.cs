using System.Globalization;
using Ddpo.Models.Lora;
using Ddpo.Schedulers;

namespace Ddpo.Config;

/// <summary>The kind of value a config key holds.</summary>
internal enum ConfigValueKind
{
    Integer,
    Float,
    Boolean,
    String,
    Table,
    IntegerList,
}

/// <summary>
/// One config key: its dotted path (ddpo-pytorch's name), kind, accessors and range check.
/// <paramref name="Check"/> returns a description of what is wrong, or null when the value is fine.
/// </summary>
internal sealed record ConfigKey(
    string Path,
    ConfigValueKind Kind,
    Func<DdpoConfig, object> Get,
    Action<DdpoConfig, object> Set,
    Func<object, string?> Check);

/// <summary>Every key of <see cref="DdpoConfig"/>, in the order they are written.</summary>
internal static class ConfigSchema
{
    /// <summary>Section names, in the order they are written.</summary>
    public static readonly string[] Sections =
        ["sample", "train", "per_prompt_stat_tracking", "lora", "rwr", "nft", "logging", "pretrained",
         "reward", "reward.aesthetic", "reward.imagereward", "reward.bertscore", "reward.vlm", "reward.server",
         "reward.ocr", "reward.geneval", "reward.vlm_score",
         "reward.pickscore", "reward.clipscore", "reward.hpsv2", .. BackpropKeys.Sections];

    /// <summary>The free-form tables (any key inside is accepted).</summary>
    public const string PromptFnKwargs = "prompt_fn_kwargs";

    /// <summary>The reward composition table (<c>name = weight</c>).</summary>
    public const string Rewards = "rewards";

    public static readonly IReadOnlyList<ConfigKey> Keys = Build();

    private static readonly Dictionary<string, ConfigKey> ByPath = Keys.ToDictionary(k => k.Path);

    public static ConfigKey? Find(string path) => ByPath.GetValueOrDefault(path);

    public static bool IsSection(string path) => Sections.Contains(path);

    /// <summary>Known keys directly under a section ("" for the top level), for error messages.</summary>
    public static IEnumerable<string> KeysUnder(string section)
    {
        var prefix = section.Length == 0 ? "" : section + ".";
        var direct = Keys.Where(k => k.Path.StartsWith(prefix, StringComparison.Ordinal))
            .Select(k => k.Path[prefix.Length..])
            .Where(rest => !rest.Contains('.'));
        var subsections = Sections.Where(s => s.StartsWith(prefix, StringComparison.Ordinal) && !s[prefix.Length..].Contains('.'))
            .Select(s => s[prefix.Length..]);
        return direct.Concat(subsections);
    }

    private static IReadOnlyList<ConfigKey> Build()
    {
        var keys = new List<ConfigKey>();

        void Int(string path, Func<DdpoConfig, int> get, Action<DdpoConfig, int> set, int min, int max = int.MaxValue) =>
            keys.Add(new ConfigKey(path, ConfigValueKind.Integer, c => get(c), (c, v) => set(c, (int)v), v =>
            {
                var i = (int)v;
                if (i < min) return $"must be >= {min}, got {i}";
                if (i > max) return $"must be <= {max}, got {i}";
                return null;
            }));

        void Float(string path, Func<DdpoConfig, double> get, Action<DdpoConfig, double> set, Func<double, string?> check) =>
            keys.Add(new ConfigKey(path, ConfigValueKind.Float, c => get(c), (c, v) => set(c, (double)v), v =>
            {
                var d = (double)v;
                return double.IsFinite(d) ? check(d) : $"must be a finite number, got {Fmt(d)}";
            }));

        void Bool(string path, Func<DdpoConfig, bool> get, Action<DdpoConfig, bool> set) =>
            keys.Add(new ConfigKey(path, ConfigValueKind.Boolean, c => get(c), (c, v) => set(c, (bool)v), _ => null));

        void Str(string path, Func<DdpoConfig, string> get, Action<DdpoConfig, string> set, Func<string, string?> check) =>
            keys.Add(new ConfigKey(path, ConfigValueKind.String, c => get(c), (c, v) => set(c, (string)v), v => check((string)v)));

        static Func<double, string?> Positive() => d => d > 0 ? null : $"must be > 0, got {Fmt(d)}";
        static Func<double, string?> NonNegative() => d => d >= 0 ? null : $"must be >= 0, got {Fmt(d)}";
        static Func<double, string?> UnitOpen() => d => d is >= 0 and < 1 ? null : $"must be in [0, 1), got {Fmt(d)}";

        // Top level.
        Str("run_name", c => c.RunName, (c, v) => c.RunName = v, v =>
            v.IndexOfAny(['/', '\\']) >= 0 || v is "." or ".." ? $"must be a plain folder name (no path separators), got '{v}'" : null);
        Int("seed", c => c.Seed, (c, v) => c.Seed = v, int.MinValue);
        Int("num_epochs", c => c.NumEpochs, (c, v) => c.NumEpochs = v, 1);
        Int("save_freq", c => c.SaveFreq, (c, v) => c.SaveFreq = v, 1);
        Int("num_checkpoint_limit", c => c.NumCheckpointLimit, (c, v) => c.NumCheckpointLimit = v, 1);
        Bool("use_lora", c => c.UseLora, (c, v) => c.UseLora = v);
        keys.Add(new ConfigKey("algorithm", ConfigValueKind.String,
            c => c.Algorithm.ToConfigName(),
            (c, v) =>
            {
                if (!TrainingAlgorithms.TryParse((string)v, out var a))
                {
                    throw new ConfigValueException($"unknown algorithm '{v}' (expected one of {string.Join(", ", TrainingAlgorithms.Names)})");
                }
                c.Algorithm = a;
            },
            _ => null));
        Str("prompt_fn", c => c.PromptFn, (c, v) => c.PromptFn = v, v =>
            Prompts.PromptSources.IsKnown(v) ? null
                : $"unknown prompt function '{v}' (expected one of {string.Join(", ", Prompts.PromptSources.Names)}, or file:PATH)");
        keys.Add(new ConfigKey(PromptFnKwargs, ConfigValueKind.Table,
            c => c.PromptFnKwargs,
            (c, v) => c.PromptFnKwargs = new Dictionary<string, object>((IDictionary<string, object>)v),
            _ => null));
        Str("reward_fn", c => c.RewardFn, (c, v) => c.RewardFn = v, v =>
            string.IsNullOrWhiteSpace(v) ? "must name a reward function" : null);
        keys.Add(new ConfigKey(Rewards, ConfigValueKind.Table,
            c => c.Rewards.ToDictionary(kv => kv.Key, kv => (object)kv.Value),
            (c, v) => c.Rewards = ToWeights((IDictionary<string, object>)v),
            v =>
            {
                foreach (var (name, w) in (IDictionary<string, object>)v)
                {
                    if (w is not double d || !double.IsFinite(d)) return $"weight of '{name}' must be a finite number";
                }
                return null;
            }));
        Str("reward_mix", c => c.RewardMix, (c, v) => c.RewardMix = v, v =>
            v is DdpoConfig.RewardAggregation or DdpoConfig.AdvantageAggregation ? null
                : $"must be \"{DdpoConfig.RewardAggregation}\" or \"{DdpoConfig.AdvantageAggregation}\", got '{v}'");
        Str("watch_rewards", c => c.WatchRewards, (c, v) => c.WatchRewards = v, _ => null);
        Str("device", c => c.Device, (c, v) => c.Device = v, v =>
            v is "cpu" or "cuda" or "auto" || (v.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(v[5..], out var n) && n >= 0)
                ? null : $"must be cpu, cuda, cuda:N or auto, got '{v}'");
        Str("model", c => c.Model, (c, v) => c.Model = v, v =>
            string.IsNullOrWhiteSpace(v) ? "must be a model folder or \"builtin\"" : null);

        // [sample]
        Int("sample.num_steps", c => c.Sample.NumSteps, (c, v) => c.Sample.NumSteps = v, 1);
        Float("sample.eta", c => c.Sample.Eta, (c, v) => c.Sample.Eta = v, NonNegative());
        Float("sample.guidance_scale", c => c.Sample.GuidanceScale, (c, v) => c.Sample.GuidanceScale = v, NonNegative());
        Int(SampleCounts.SamplesPerEpochKey, c => c.Sample.SamplesPerEpoch, (c, v) => c.Sample.SamplesPerEpoch = v, 0);
        Int("sample.batch_size", c => c.Sample.BatchSize, (c, v) => c.Sample.BatchSize = v, 1);
        Int("sample.num_batches_per_epoch", c => c.Sample.NumBatchesPerEpoch, (c, v) => c.Sample.NumBatchesPerEpoch = v, 1);
        Int("sample.group_size", c => c.Sample.GroupSize, (c, v) => c.Sample.GroupSize = v, 1);
        keys.Add(new ConfigKey("sample.sde_window", ConfigValueKind.IntegerList, c => c.Sample.SdeWindow,
            (c, v) => c.Sample.SdeWindow = (int[])v,
            v => (int[])v is [] or [>= 0, _] && ((int[])v is [] || ((int[])v)[0] < ((int[])v)[1])
                ? null : $"must be [] (every step) or [start, end] with 0 <= start < end, got {ConfigValues.ToToml(v)}"));
        Int("sample.sde_window_shift", c => c.Sample.SdeWindowShift, (c, v) => c.Sample.SdeWindowShift = v, 0);
        Int("sample.sde_window_shift_every", c => c.Sample.SdeWindowShiftEvery, (c, v) => c.Sample.SdeWindowShiftEvery = v, 1);
        Int("sample.resolution", c => c.Sample.Resolution, (c, v) => c.Sample.Resolution = v, 0);
        Int("sample.max_sequence_length", c => c.Sample.MaxSequenceLength, (c, v) => c.Sample.MaxSequenceLength = v, 0);
        Bool("sample.init_same_noise", c => c.Sample.InitSameNoise, (c, v) => c.Sample.InitSameNoise = v);
        Str("sample.sde_type", c => c.Sample.SdeType, (c, v) => c.Sample.SdeType = v,
            v => SampleConfig.SdeTypes.Contains(v) ? null : UnknownName(v, SampleConfig.SdeTypes));
        Str("sample.final_step", c => c.Sample.FinalStep.ToConfigName(),
            (c, v) => c.Sample.FinalStep = Schedulers.DdimFinalSteps.TryParse(v) ?? throw new ConfigValueException(UnknownName(v, Schedulers.DdimFinalSteps.Names)),
            v => Schedulers.DdimFinalSteps.TryParse(v) is null ? UnknownName(v, Schedulers.DdimFinalSteps.Names) : null);

        // [train]
        Int(SampleCounts.TotalBatchSizeKey, c => c.Train.TotalBatchSize, (c, v) => c.Train.TotalBatchSize = v, 0);
        Int("train.batch_size", c => c.Train.BatchSize, (c, v) => c.Train.BatchSize = v, 1);
        Float("train.learning_rate", c => c.Train.LearningRate, (c, v) => c.Train.LearningRate = v, Positive());
        Float("train.adam_beta1", c => c.Train.AdamBeta1, (c, v) => c.Train.AdamBeta1 = v, UnitOpen());
        Float("train.adam_beta2", c => c.Train.AdamBeta2, (c, v) => c.Train.AdamBeta2 = v, UnitOpen());
        Float("train.adam_weight_decay", c => c.Train.AdamWeightDecay, (c, v) => c.Train.AdamWeightDecay = v, NonNegative());
        Float("train.adam_epsilon", c => c.Train.AdamEpsilon, (c, v) => c.Train.AdamEpsilon = v, Positive());
        Int("train.gradient_accumulation_steps", c => c.Train.GradientAccumulationSteps, (c, v) => c.Train.GradientAccumulationSteps = v, 1);
        Float("train.max_grad_norm", c => c.Train.MaxGradNorm, (c, v) => c.Train.MaxGradNorm = v, Positive());
        Int("train.max_skipped_steps", c => c.Train.MaxSkippedSteps, (c, v) => c.Train.MaxSkippedSteps = v, 1);
        Int("train.num_inner_epochs", c => c.Train.NumInnerEpochs, (c, v) => c.Train.NumInnerEpochs = v, 1);
        Bool("train.cfg", c => c.Train.Cfg, (c, v) => c.Train.Cfg = v);
        Float("train.adv_clip_max", c => c.Train.AdvClipMax, (c, v) => c.Train.AdvClipMax = v, Positive());
        Float("train.clip_range", c => c.Train.ClipRange, (c, v) => c.Train.ClipRange = v, Positive());
        Float("train.timestep_fraction", c => c.Train.TimestepFraction, (c, v) => c.Train.TimestepFraction = v,
            d => d is > 0 and <= 1 ? null : $"must be in (0, 1], got {Fmt(d)}");
        Float("train.kl_coef", c => c.Train.KlCoef, (c, v) => c.Train.KlCoef = v, NonNegative());
        Str("train.loss_scaling", c => c.Train.LossScaling, (c, v) => c.Train.LossScaling = v, v =>
            v is "auto" or "dynamic" or "off" ? null : $"must be auto, dynamic or off, got '{v}'");
        Float("train.loss_scale_init", c => c.Train.LossScaleInit, (c, v) => c.Train.LossScaleInit = v,
            d => d is > 0 and <= 3.4e38 ? null : $"must be a positive float32 number, got {Fmt(d)}");
        Int("train.loss_scale_growth_interval", c => c.Train.LossScaleGrowthInterval, (c, v) => c.Train.LossScaleGrowthInterval = v, 1);
        Bool("train.ema", c => c.Train.Ema, (c, v) => c.Train.Ema = v);
        Float("train.ema_decay", c => c.Train.EmaDecay, (c, v) => c.Train.EmaDecay = v, UnitOpen());
        Int("train.ema_update_interval", c => c.Train.EmaUpdateInterval, (c, v) => c.Train.EmaUpdateInterval = v, 1);

        // [per_prompt_stat_tracking]
        Bool("per_prompt_stat_tracking.enabled", c => c.PerPromptStatTracking.Enabled, (c, v) => c.PerPromptStatTracking.Enabled = v);
        Int("per_prompt_stat_tracking.buffer_size", c => c.PerPromptStatTracking.BufferSize, (c, v) => c.PerPromptStatTracking.BufferSize = v, 1);
        Int("per_prompt_stat_tracking.min_count", c => c.PerPromptStatTracking.MinCount, (c, v) => c.PerPromptStatTracking.MinCount = v, 0);

        // [lora]
        Int("lora.rank", c => c.Lora.Rank, (c, v) => c.Lora.Rank = v, 1);
        Float("lora.alpha", c => c.Lora.Alpha, (c, v) => c.Lora.Alpha = v, Positive());
        Str("lora.init", c => c.Lora.Init.ToConfigName(),
            (c, v) => c.Lora.Init = Models.Lora.LoraInits.TryParse(v) ?? throw new ConfigValueException(UnknownName(v, Models.Lora.LoraInits.Names)),
            v => Models.Lora.LoraInits.TryParse(v) is null ? UnknownName(v, Models.Lora.LoraInits.Names) : null);

        // [rwr]
        Float("rwr.temperature", c => c.Rwr.Temperature, (c, v) => c.Rwr.Temperature = v, NonNegative());
        Float("rwr.percentile", c => c.Rwr.Percentile, (c, v) => c.Rwr.Percentile = v,
            d => d is >= 0 and <= 100 ? null : $"must be in [0, 100], got {Fmt(d)}");

        // [nft]
        Float("nft.beta", c => c.Nft.Beta, (c, v) => c.Nft.Beta = v, Positive());
        Int("nft.decay_type", c => c.Nft.DecayType, (c, v) => c.Nft.DecayType = v, 0, NftConfig.DecaySchedules.Count - 1);
        Str("nft.timestep_distribution", c => c.Nft.TimestepDistribution, (c, v) => c.Nft.TimestepDistribution = v,
            v => NftConfig.TimestepDistributions.Contains(v) ? null : UnknownName(v, NftConfig.TimestepDistributions));
        Float("nft.kl_coef", c => c.Nft.KlCoef, (c, v) => c.Nft.KlCoef = v, NonNegative());

        // [logging]
        Int("logging.image_every", c => c.Logging.ImageEvery, (c, v) => c.Logging.ImageEvery = v, 0);
        Int("logging.num_eval_images", c => c.Logging.NumEvalImages, (c, v) => c.Logging.NumEvalImages = v, 0);

        // [pretrained]
        Str("pretrained.dtype", c => c.Pretrained.Dtype, (c, v) => c.Pretrained.Dtype = v, v =>
            v is "auto" or "fp32" or "fp16" or "bf16" ? null : $"must be auto, fp32, fp16 or bf16, got '{v}'");

        RewardKeys.Add(keys);
        BackpropKeys.Add(keys);

        return keys;
    }

    private static Dictionary<string, double> ToWeights(IDictionary<string, object> table)
    {
        var result = new Dictionary<string, double>();
        foreach (var (name, w) in table)
        {
            result[name] = w switch
            {
                double d => d,
                long l => l,
                int i => i,
                _ => throw new ConfigValueException($"weight of '{name}' must be a number, got {ConfigValues.Describe(w)}"),
            };
        }
        return result;
    }

    private static string UnknownName(string value, IEnumerable<string> names) =>
        $"must be one of {string.Join(", ", names.Select(n => $"\"{n}\""))}, got '{value}'";

    internal static string Fmt(double d) => d.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>A value of the wrong type or out of range; the caller adds the origin and key.</summary>
internal sealed class ConfigValueException(string message) : Exception(message);
