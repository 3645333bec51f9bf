using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Schedulers;

/// <summary>
/// The <c>scheduler_config.json</c> of diffusers 0.31's <c>FlowMatchEulerDiscreteScheduler</c> (SD3/3.5, FLUX.1), read
/// strictly: every key 0.31 has may be given (an absent or null one takes 0.31's default, as diffusers does: SD3's own
/// folder lists only <c>num_train_timesteps</c> and <c>shift</c>); keys that later diffusers versions write are accepted
/// only at the value that leaves 0.31's behaviour unchanged; any other key, or a value of the wrong type, is a
/// <see cref="ConfigException"/> naming the file and the key.
/// </summary>
internal sealed record FlowMatchEulerDiscreteSchedulerConfig
{
    /// <summary>The diffusers class name written to and expected in the file.</summary>
    public const string ClassName = "FlowMatchEulerDiscreteScheduler";

    /// <summary>Number of training timesteps (sigma = t / N).</summary>
    public int NumTrainTimesteps { get; init; } = 1000;

    /// <summary>The static shift of the sigmas, <c>shift·σ / (1 + (shift - 1)·σ)</c> (SD3: 3.0).</summary>
    public double Shift { get; init; } = 1.0;

    /// <summary>Shift by the image size at inference (<c>mu</c>, FLUX) instead of by <see cref="Shift"/>.</summary>
    public bool UseDynamicShifting { get; init; }

    /// <summary><c>mu</c> at <see cref="BaseImageSeqLen"/> (the pipelines' <c>calculate_shift</c>).</summary>
    public double BaseShift { get; init; } = 0.5;

    /// <summary><c>mu</c> at <see cref="MaxImageSeqLen"/>.</summary>
    public double MaxShift { get; init; } = 1.15;

    /// <summary>Image sequence length (latent tokens) at which <c>mu</c> = <see cref="BaseShift"/>.</summary>
    public int BaseImageSeqLen { get; init; } = 256;

    /// <summary>Image sequence length at which <c>mu</c> = <see cref="MaxShift"/>.</summary>
    public int MaxImageSeqLen { get; init; } = 4096;

    // Keys of later diffusers versions, with the value under which they change nothing of 0.31's schedule.
    private static readonly (string Key, object? Neutral, string Why)[] LaterKeys =
    [
        ("invert_sigmas", false, "inverted sigmas are not in diffusers 0.31"),
        ("shift_terminal", null, "a terminal shift is not in diffusers 0.31"),
        ("use_karras_sigmas", false, "Karras sigmas are not in diffusers 0.31's flow-matching scheduler"),
        ("use_exponential_sigmas", false, "exponential sigmas are not in diffusers 0.31's flow-matching scheduler"),
        ("use_beta_sigmas", false, "beta sigmas are not in diffusers 0.31's flow-matching scheduler"),
        ("time_shift_type", "exponential", "only the exponential time shift is in diffusers 0.31"),
        ("stochastic_sampling", false, "stochastic Euler sampling is not in diffusers 0.31"),
    ];

    private static readonly string[] Keys =
        ["num_train_timesteps", "shift", "use_dynamic_shifting", "base_shift", "max_shift", "base_image_seq_len", "max_image_seq_len"];

    /// <summary>SD3/3.5's scheduler (static shift 3.0).</summary>
    public static FlowMatchEulerDiscreteSchedulerConfig StableDiffusion3() => new() { Shift = 3.0 };

    /// <summary>FLUX.1's scheduler (dynamic shifting, mu from 0.5 at 256 tokens to 1.15 at 4096).</summary>
    public static FlowMatchEulerDiscreteSchedulerConfig Flux() => new() { Shift = 3.0, UseDynamicShifting = true };

    /// <summary>Reads a <c>scheduler_config.json</c> (see <see cref="FromJson"/>).</summary>
    public static FlowMatchEulerDiscreteSchedulerConfig Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>Builds the config from parsed JSON; unknown keys, unsupported values and ill-typed values are errors naming the key.</summary>
    public static FlowMatchEulerDiscreteSchedulerConfig FromJson(JsonConfig c)
    {
        var className = c.GetStringOrNull("_class_name");
        if (className is not null && className != ClassName)
        {
            throw new ConfigException($"{c.Source}: field '_class_name' = \"{className}\" but a {ClassName} config was expected");
        }
        foreach (var (key, neutral, why) in LaterKeys)
        {
            c.RequireUnset(key, why, neutral);
        }
        foreach (var key in c.Root.Select(kv => kv.Key))
        {
            // diffusers' own bookkeeping keys (_class_name, _diffusers_version, _name_or_path, ...) carry no settings.
            if (key.StartsWith('_') || Keys.Contains(key) || LaterKeys.Any(k => k.Key == key)) continue;
            throw new ConfigException($"{c.Source}: unknown field '{key}' (a diffusers 0.31 {ClassName} config has: {string.Join(", ", Keys)})");
        }
        var d = new FlowMatchEulerDiscreteSchedulerConfig();
        var config = new FlowMatchEulerDiscreteSchedulerConfig
        {
            NumTrainTimesteps = c.GetInt("num_train_timesteps", d.NumTrainTimesteps),
            Shift = c.GetDouble("shift", d.Shift),
            UseDynamicShifting = c.GetBool("use_dynamic_shifting", d.UseDynamicShifting),
            BaseShift = c.GetDouble("base_shift", d.BaseShift),
            MaxShift = c.GetDouble("max_shift", d.MaxShift),
            BaseImageSeqLen = c.GetInt("base_image_seq_len", d.BaseImageSeqLen),
            MaxImageSeqLen = c.GetInt("max_image_seq_len", d.MaxImageSeqLen),
        };
        config.Validate(c.Source);
        return config;
    }

    /// <summary>Values no schedule can be built from are a <see cref="ConfigException"/> naming the field.</summary>
    public void Validate(string source = nameof(FlowMatchEulerDiscreteSchedulerConfig))
    {
        ConfigException Bad(string field, object value, string expected) => new($"{source}: field '{field}' = {value}, expected {expected}");
        if (NumTrainTimesteps is < 2 or > 100_000) throw Bad("num_train_timesteps", NumTrainTimesteps, "an integer from 2 to 100000");
        if (!(Shift > 0) || double.IsInfinity(Shift)) throw Bad("shift", Shift, "a positive number");
        if (!double.IsFinite(BaseShift)) throw Bad("base_shift", BaseShift, "a finite number");
        if (!double.IsFinite(MaxShift)) throw Bad("max_shift", MaxShift, "a finite number");
        // calculate_shift divides by their difference.
        if (MaxImageSeqLen == BaseImageSeqLen) throw Bad("max_image_seq_len", MaxImageSeqLen, $"a length other than base_image_seq_len = {BaseImageSeqLen}");
    }

    /// <summary>The <c>scheduler_config.json</c> text diffusers 0.31 writes (keys sorted).</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["_class_name"] = ClassName,
            ["_diffusers_version"] = "0.31.0",
            ["base_image_seq_len"] = BaseImageSeqLen,
            ["base_shift"] = BaseShift,
            ["max_image_seq_len"] = MaxImageSeqLen,
            ["max_shift"] = MaxShift,
            ["num_train_timesteps"] = NumTrainTimesteps,
            ["shift"] = Shift,
            ["use_dynamic_shifting"] = UseDynamicShifting,
        };
        return o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
