using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Schedulers;

/// <summary>
/// The fields of a diffusers scheduler config that DDIM uses. Stable Diffusion folders often ship a
/// PNDM or other scheduler config; like ddpo-pytorch (<c>DDIMScheduler.from_config</c>) we read the
/// shared fields and ignore the rest.
/// </summary>
internal sealed record DdimSchedulerConfig
{
    /// <summary>Number of diffusion steps the model was trained with.</summary>
    public int NumTrainTimesteps { get; init; } = 1000;
    /// <summary>First beta of the schedule.</summary>
    public double BetaStart { get; init; } = 0.0001;
    /// <summary>Last beta of the schedule.</summary>
    public double BetaEnd { get; init; } = 0.02;
    /// <summary><c>linear</c>, <c>scaled_linear</c> or <c>squaredcos_cap_v2</c>.</summary>
    public string BetaSchedule { get; init; } = "linear";
    /// <summary>Clamp the predicted clean sample to ±<see cref="ClipSampleRange"/>.</summary>
    public bool ClipSample { get; init; } = true;
    /// <summary>Range for <see cref="ClipSample"/>.</summary>
    public double ClipSampleRange { get; init; } = 1.0;
    /// <summary>Use alpha_cumprod = 1 for the step after the last one (else alphas_cumprod[0]).</summary>
    public bool SetAlphaToOne { get; init; } = true;
    /// <summary>Offset added to the inference timesteps (SD uses 1).</summary>
    public int StepsOffset { get; init; }
    /// <summary><c>epsilon</c>, <c>v_prediction</c> or <c>sample</c>.</summary>
    public string PredictionType { get; init; } = "epsilon";
    /// <summary><c>leading</c>, <c>trailing</c> or <c>linspace</c>.</summary>
    public string TimestepSpacing { get; init; } = "leading";

    /// <summary>Stable Diffusion 1.x/2.x's scheduler: scaled-linear betas 0.00085..0.012, no clipping, offset 1.</summary>
    public static DdimSchedulerConfig StableDiffusion(string predictionType = "epsilon") => new()
    {
        BetaStart = 0.00085,
        BetaEnd = 0.012,
        BetaSchedule = "scaled_linear",
        ClipSample = false,
        SetAlphaToOne = false,
        StepsOffset = 1,
        PredictionType = predictionType,
    };

    /// <summary>Reads <c>scheduler_config.json</c>; unsupported options (thresholding, trained_betas, zero-SNR rescale) are errors naming the field.</summary>
    public static DdimSchedulerConfig Load(string path) => FromJson(JsonConfig.Load(path));

    /// <summary>Reads the fields from a parsed config.</summary>
    public static DdimSchedulerConfig FromJson(JsonConfig c)
    {
        c.RequireUnset("trained_betas", "explicit beta arrays are not supported");
        c.RequireUnset("thresholding", "dynamic thresholding is not supported", false);
        c.RequireUnset("rescale_betas_zero_snr", "zero-terminal-SNR rescaling is not supported", false);
        var d = new DdimSchedulerConfig();
        var config = new DdimSchedulerConfig
        {
            NumTrainTimesteps = c.GetInt("num_train_timesteps", d.NumTrainTimesteps),
            BetaStart = c.GetDouble("beta_start", d.BetaStart),
            BetaEnd = c.GetDouble("beta_end", d.BetaEnd),
            BetaSchedule = c.GetChoice("beta_schedule", d.BetaSchedule, "linear", "scaled_linear", "squaredcos_cap_v2"),
            ClipSample = c.GetBool("clip_sample", d.ClipSample),
            ClipSampleRange = c.GetDouble("clip_sample_range", d.ClipSampleRange),
            SetAlphaToOne = c.GetBool("set_alpha_to_one", d.SetAlphaToOne),
            StepsOffset = c.GetInt("steps_offset", d.StepsOffset),
            PredictionType = c.GetChoice("prediction_type", d.PredictionType, "epsilon", "v_prediction", "sample"),
            TimestepSpacing = c.GetChoice("timestep_spacing", d.TimestepSpacing, "leading", "trailing", "linspace"),
        };
        config.CheckRanges(c.Source);
        return config;
    }

    /// <summary>
    /// Values the schedule cannot be built from (they would reach libtorch as an empty or negative range, or
    /// give NaN alphas) are a <see cref="ConfigException"/> naming the field.
    /// </summary>
    private void CheckRanges(string source)
    {
        ConfigException Bad(string field, object value, string expected) => new($"{source}: field '{field}' = {value}, expected {expected}");
        if (NumTrainTimesteps is < 1 or > 100_000) throw Bad("num_train_timesteps", NumTrainTimesteps, "an integer from 1 to 100000");
        if (!(BetaStart is > 0 and < 1)) throw Bad("beta_start", BetaStart, "a number in (0, 1)");
        // diffusers accepts beta_end >= 1 (its own tests use 2); only the order and finiteness are checked here.
        if (!double.IsFinite(BetaEnd) || BetaEnd <= 0 || BetaEnd < BetaStart) throw Bad("beta_end", BetaEnd, $"a finite number >= beta_start = {BetaStart}");
        if (!(ClipSampleRange > 0) || double.IsInfinity(ClipSampleRange)) throw Bad("clip_sample_range", ClipSampleRange, "a positive number");
        if (StepsOffset < 0 || StepsOffset >= NumTrainTimesteps) throw Bad("steps_offset", StepsOffset, $"an integer from 0 to num_train_timesteps - 1 = {NumTrainTimesteps - 1}");
    }

    /// <summary>A diffusers-compatible <c>scheduler_config.json</c> for a DDIMScheduler.</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["_class_name"] = "DDIMScheduler",
            ["num_train_timesteps"] = NumTrainTimesteps,
            ["beta_start"] = BetaStart,
            ["beta_end"] = BetaEnd,
            ["beta_schedule"] = BetaSchedule,
            ["clip_sample"] = ClipSample,
            ["clip_sample_range"] = ClipSampleRange,
            ["set_alpha_to_one"] = SetAlphaToOne,
            ["steps_offset"] = StepsOffset,
            ["prediction_type"] = PredictionType,
            ["timestep_spacing"] = TimestepSpacing,
            ["thresholding"] = false,
            ["rescale_betas_zero_snr"] = false,
        };
        return o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }
}
