using System.Text.Json.Nodes;
using Ddpo.Models.Loading;

namespace Ddpo.Pipelines;

/// <summary>
/// A diffusers pipeline folder's <c>model_index.json</c> and its component folders, for the families' layouts:
/// whether a component is listed (diffusers writes <c>[null, null]</c> for one saved without), and the folder of a
/// required one (an error naming it and the index when absent).
/// </summary>
internal sealed class PipelineIndex
{
    private readonly JsonObject _index;

    private PipelineIndex(string directory, string indexPath, JsonObject index)
    {
        Directory = directory;
        IndexPath = indexPath;
        _index = index;
    }

    /// <summary>The pipeline folder.</summary>
    public string Directory { get; }

    /// <summary>Its <c>model_index.json</c>.</summary>
    public string IndexPath { get; }

    /// <summary>Reads <paramref name="directory"/>'s index; <paramref name="expected"/> says what such a folder holds, for the error when it is missing.</summary>
    public static PipelineIndex Open(string directory, string expected)
    {
        var indexPath = Path.Combine(directory, "model_index.json");
        if (!File.Exists(indexPath)) throw new ModelLoadException($"{indexPath}: not found ({expected})");
        var index = StrictJson.Parse(Utf8Text.ReadFile(indexPath, message => new ModelLoadException(message))) as JsonObject
            ?? throw new ModelLoadException($"{indexPath}: expected a JSON object");
        return new PipelineIndex(directory, indexPath, index);
    }

    /// <summary>Whether the index lists component <paramref name="name"/> with a library and a class (not <c>[null, null]</c>).</summary>
    public bool Listed(string name) =>
        _index.TryGetPropertyValue(name, out var v) && v is JsonArray a && a.Count == 2 && a[0] is not null && a[1] is not null;

    /// <summary>A boolean setting of the index (e.g. SDXL's <c>force_zeros_for_empty_prompt</c>): <paramref name="defaultValue"/> when absent or null, an error naming it when not a boolean.</summary>
    public bool Flag(string name, bool defaultValue)
    {
        if (!_index.TryGetPropertyValue(name, out var v) || v is null) return defaultValue;
        if (v is JsonValue value && value.TryGetValue<bool>(out var b)) return b;
        throw new ModelLoadException($"{IndexPath}: field '{name}' expected true or false, got {v.ToJsonString()}");
    }

    /// <summary>The folder of component <paramref name="name"/>; an error naming it when it is missing.</summary>
    public string Required(string name)
    {
        var dir = Path.Combine(Directory, name);
        if (!System.IO.Directory.Exists(dir))
        {
            throw new ModelLoadException($"{dir}: component folder '{name}' is missing (model_index.json: {IndexPath})");
        }
        return dir;
    }

    /// <summary>The scheduler's <c>scheduler_config.json</c>; an error when it is missing.</summary>
    public string SchedulerConfig()
    {
        var path = Path.Combine(Required("scheduler"), "scheduler_config.json");
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: not found (the FlowMatchEulerDiscreteScheduler's config)");
        return path;
    }

    /// <summary>Writes a <c>model_index.json</c> of <paramref name="className"/> with the given (library, class) components.</summary>
    public static void Write(string directory, string className, IEnumerable<(string Name, string Library, string Class)> components)
    {
        var o = new JsonObject { ["_class_name"] = className, ["_diffusers_version"] = "0.31.0" };
        foreach (var (name, library, cls) in components.OrderBy(c => c.Name, StringComparer.Ordinal))
        {
            o[name] = new JsonArray(library, cls);
        }
        File.WriteAllText(Path.Combine(directory, "model_index.json"), o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
}
