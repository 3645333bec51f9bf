using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ddpo.Training;

/// <summary>
/// The non-tensor part of a checkpoint (<c>state.json</c>): the epoch it closes, the optimiser step
/// count, the config hash, the <see cref="TrainingRng"/> state, the <see cref="PerPromptStatTracker"/>
/// state and free-form extras.
/// </summary>
public sealed class CheckpointState
{
    /// <summary>The last completed epoch (training resumes at <c>Epoch + 1</c>).</summary>
    public int Epoch { get; set; }

    /// <summary>Optimiser steps taken so far.</summary>
    public long GlobalStep { get; set; }

    /// <summary><see cref="Config.DdpoConfig.ComputeHash"/> of the run's config.</summary>
    public string ConfigHash { get; set; } = "";

    /// <summary><see cref="TrainingRng.GetState"/> (4 words), or empty.</summary>
    public ulong[] RngState { get; set; } = [];

    /// <summary><see cref="PerPromptStatTracker.ToJson"/>, or null when stat tracking is off.</summary>
    public string? StatTrackerJson { get; set; }

    /// <summary>Anything else the trainer wants back on resume (e.g. a torch generator seed).</summary>
    public Dictionary<string, string> Extra { get; set; } = [];

    /// <summary>Writes the state as a JSON document (the stat tracker embedded as an object).</summary>
    public string ToJson()
    {
        var root = new JsonObject
        {
            ["epoch"] = Epoch,
            ["global_step"] = GlobalStep,
            ["config_hash"] = ConfigHash,
            ["rng_state"] = new JsonArray(RngState.Select(w => (JsonNode)JsonValue.Create(w)).ToArray()),
            ["stat_tracker"] = StatTrackerJson is null ? null : JsonNode.Parse(StatTrackerJson),
            ["extra"] = new JsonObject(Extra.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Reads a document written by <see cref="ToJson"/>; errors name <paramref name="source"/>.</summary>
    public static CheckpointState FromJson(string json, string source)
    {
        try
        {
            var root = Ddpo.Models.Loading.StrictJson.Parse(json)?.AsObject() ?? throw new FormatException("expected a JSON object");
            return new CheckpointState
            {
                Epoch = root["epoch"]?.GetValue<int>() ?? throw new FormatException("missing 'epoch'"),
                GlobalStep = root["global_step"]?.GetValue<long>() ?? 0,
                ConfigHash = root["config_hash"]?.GetValue<string>() ?? "",
                RngState = root["rng_state"]?.AsArray().Select(n => n?.GetValue<ulong>() ?? throw new FormatException("'rng_state' holds null, expected integers")).ToArray() ?? [],
                StatTrackerJson = root["stat_tracker"]?.ToJsonString(),
                Extra = root["extra"]?.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value?.GetValue<string>() ?? throw new FormatException($"'extra.{kv.Key}' is null, expected a string")) ?? [],
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new FormatException($"{source}: malformed checkpoint state ({e.Message})", e);
        }
    }
}
