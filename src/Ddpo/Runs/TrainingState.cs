using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ddpo.Runs;

/// <summary>
/// The non-tensor part of a training checkpoint (<c>state.json</c>): the epoch it closes, the optimiser step
/// count, the config hash, the per-prompt stat tracker's state and the loss scaler's. No random-generator state:
/// every epoch's randomness is derived from the seed and the epoch.
/// </summary>
internal sealed class TrainingState
{
    /// <summary>The last completed epoch (training resumes at <c>Epoch + 1</c>).</summary>
    public int Epoch { get; set; }

    /// <summary>Optimiser steps taken so far, over all epochs up to <see cref="Epoch"/>.</summary>
    public long GlobalStep { get; set; }

    /// <summary><c>DdpoConfig.ComputeHash</c> of the run's config.</summary>
    public string ConfigHash { get; set; } = "";

    /// <summary>The per-prompt stat tracker's JSON (<c>PerPromptStatTracker.ToJson</c>), or null when stat tracking is off.</summary>
    public string? StatTrackerJson { get; set; }

    /// <summary>The dynamic loss scale (<c>LossScaler</c>), or null when the run does not scale its loss.</summary>
    public float? LossScale { get; set; }

    /// <summary>Good optimizer steps since the loss scale last changed.</summary>
    public int LossScaleGrowthTracker { get; set; }

    /// <summary>Writes the state as a JSON document (the stat tracker embedded as an object).</summary>
    public string ToJson()
    {
        var root = new JsonObject
        {
            ["epoch"] = Epoch,
            ["global_step"] = GlobalStep,
            ["config_hash"] = ConfigHash,
            ["stat_tracker"] = StatTrackerJson is null ? null : JsonNode.Parse(StatTrackerJson),
        };
        if (LossScale is { } scale)
        {
            root["loss_scale"] = scale;
            root["loss_scale_growth_tracker"] = LossScaleGrowthTracker;
        }
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// Reads a document written by <see cref="ToJson"/>; errors name <paramref name="source"/>. Keys it does
    /// not know (older checkpoints wrote <c>rng_state</c> and <c>extra</c>, never used) are ignored.
    /// </summary>
    public static TrainingState FromJson(string json, string source)
    {
        try
        {
            var root = Ddpo.Models.Loading.StrictJson.Parse(json)?.AsObject() ?? throw new FormatException("expected a JSON object");
            return new TrainingState
            {
                Epoch = root["epoch"]?.GetValue<int>() ?? throw new FormatException("missing 'epoch'"),
                GlobalStep = root["global_step"]?.GetValue<long>() ?? 0,
                ConfigHash = root["config_hash"]?.GetValue<string>() ?? "",
                StatTrackerJson = root["stat_tracker"]?.ToJsonString(),
                LossScale = root["loss_scale"]?.GetValue<float>(),
                LossScaleGrowthTracker = root["loss_scale_growth_tracker"]?.GetValue<int>() ?? 0,
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new FormatException($"{source}: malformed checkpoint state ({e.Message})", e);
        }
    }
}
