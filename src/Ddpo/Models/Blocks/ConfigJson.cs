using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Runtime;

namespace Ddpo.Models.Blocks;

/// <summary>Helpers shared by the model configs for reading and writing diffusers <c>config.json</c> files.</summary>
internal static class ConfigJson
{
    /// <summary>Fails when the field is present with a JSON null (where null would select an unsupported variant).</summary>
    public static void RequireNotNull(JsonConfig cfg, string name, string why)
    {
        if (cfg.Root.TryGetPropertyValue(name, out var v) && v is null)
        {
            throw new ConfigException($"{cfg.Source}: field '{name}' = null is not supported ({why})");
        }
    }

    /// <summary>Fails when <c>_class_name</c> is present and names another class.</summary>
    public static void RequireClass(JsonConfig cfg, string className)
    {
        var name = cfg.GetStringOrNull("_class_name");
        if (name is not null && name != className)
        {
            throw new ConfigException($"{cfg.Source}: field '_class_name' = \"{name}\" but a {className} config was expected");
        }
    }

    /// <summary>A boolean or an array of booleans that must all be false (diffusers' <c>only_cross_attention</c>).</summary>
    public static void RequireFalseOrAllFalse(JsonConfig cfg, string name, string why)
    {
        if (cfg.Root.TryGetPropertyValue(name, out var v) && v is JsonArray arr
            && arr.All(x => x is JsonValue jv && jv.TryGetValue<bool>(out var b) && !b))
        {
            return;
        }
        cfg.RequireUnset(name, why, false);
    }

    /// <summary>One integer when all entries are equal (diffusers' compact form), else the array.</summary>
    public static JsonNode IntOrArray(IReadOnlyList<int> values) =>
        values.Count > 0 && values.All(v => v == values[0]) ? JsonValue.Create(values[0]) : new JsonArray(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());

    /// <summary>A JSON array of strings.</summary>
    public static JsonArray Strings(IEnumerable<string> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());

    /// <summary>A JSON array of integers.</summary>
    public static JsonArray Ints(IEnumerable<int> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());

    /// <summary>Serialises with keys sorted (as diffusers writes them), indented.</summary>
    public static string Write(JsonObject obj)
    {
        var sorted = new JsonObject();
        foreach (var (key, value) in obj.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            sorted[key] = value?.DeepClone();
        }
        return sorted.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>Writes text to a file atomically (temporary file in the same folder, then renamed).</summary>
    public static void WriteFileAtomic(string path, string text) => AtomicFile.WriteAllText(path, text);
}
