using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Base;

namespace Ddpo.Models.Loading;

/// <summary>
/// Read-only view of a diffusers / transformers <c>config.json</c> with typed getters whose
/// errors name the file and the field. Absent fields and JSON <c>null</c> take the default.
/// </summary>
internal sealed class JsonConfig
{
    private readonly JsonObject _root;

    /// <summary>Where the values came from (a path, or a description), used in error messages.</summary>
    public string Source { get; }

    /// <summary>Wraps an already parsed JSON object.</summary>
    public JsonConfig(JsonObject root, string source)
    {
        _root = root;
        Source = source;
    }

    /// <summary>Reads and parses a config file; a missing or malformed file is a <see cref="ConfigException"/>.</summary>
    public static JsonConfig Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new ConfigException($"{path}: config file not found");
        }
        try
        {
            var node = StrictJson.Parse(Utf8Text.ReadFile(path, message => new ConfigException(message))) as JsonObject
                ?? throw new ConfigException($"{path}: expected a JSON object at the top level");
            return new JsonConfig(node, path);
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>The underlying JSON (a copy is not made: do not modify).</summary>
    public JsonObject Root => _root;

    /// <summary>True when the field is present and not null.</summary>
    public bool Has(string name) => _root.TryGetPropertyValue(name, out var v) && v is not null;

    private JsonNode? Get(string name) => _root.TryGetPropertyValue(name, out var v) ? v : null;

    private ConfigException Wrong(string name, string expected, JsonNode? got) =>
        new($"{Source}: field '{name}' expected {expected}, got {(got is null ? "null" : got.ToJsonString())}");

    /// <summary>An integer field.</summary>
    public int GetInt(string name, int defaultValue)
    {
        var v = Get(name);
        if (v is null) return defaultValue;
        try { return v.GetValue<int>(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException) { throw Wrong(name, "an integer", v); }
    }

    /// <summary>A nullable integer field.</summary>
    public int? GetIntOrNull(string name) => Has(name) ? GetInt(name, 0) : null;

    /// <summary>A floating-point field.</summary>
    public double GetDouble(string name, double defaultValue)
    {
        var v = Get(name);
        if (v is null) return defaultValue;
        try { return v.GetValue<double>(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException) { throw Wrong(name, "a number", v); }
    }

    /// <summary>A boolean field.</summary>
    public bool GetBool(string name, bool defaultValue)
    {
        var v = Get(name);
        if (v is null) return defaultValue;
        try { return v.GetValue<bool>(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException) { throw Wrong(name, "true or false", v); }
    }

    /// <summary>A string field.</summary>
    public string GetString(string name, string defaultValue) => GetStringOrNull(name) ?? defaultValue;

    /// <summary>A nullable string field.</summary>
    public string? GetStringOrNull(string name)
    {
        var v = Get(name);
        if (v is null) return null;
        try { return v.GetValue<string>(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException) { throw Wrong(name, "a string", v); }
    }

    /// <summary>An array of integers.</summary>
    public int[] GetIntArray(string name, int[] defaultValue)
    {
        var v = Get(name);
        if (v is null) return defaultValue;
        if (v is not JsonArray a) throw Wrong(name, "an array of integers", v);
        try { return a.Select(x => x!.GetValue<int>()).ToArray(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException or NullReferenceException) { throw Wrong(name, "an array of integers", v); }
    }

    /// <summary>Either one integer (repeated <paramref name="count"/> times) or an array of <paramref name="count"/> integers.</summary>
    public int[]? GetIntOrIntArray(string name, int count)
    {
        var v = Get(name);
        if (v is null) return null;
        if (v is JsonArray)
        {
            var arr = GetIntArray(name, []);
            if (arr.Length != count) throw Wrong(name, $"an integer or an array of {count} integers", v);
            return arr;
        }
        return Enumerable.Repeat(GetInt(name, 0), count).ToArray();
    }

    /// <summary>An array of strings.</summary>
    public string[] GetStringArray(string name, string[] defaultValue)
    {
        var v = Get(name);
        if (v is null) return defaultValue;
        if (v is not JsonArray a) throw Wrong(name, "an array of strings", v);
        try { return a.Select(x => x!.GetValue<string>()).ToArray(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException or NullReferenceException) { throw Wrong(name, "an array of strings", v); }
    }

    /// <summary>
    /// Fails when a field that selects a feature we do not implement is set to anything but
    /// null / its neutral value (e.g. SDXL's <c>addition_embed_type</c>).
    /// </summary>
    public void RequireUnset(string name, string why, params object?[] neutralValues)
    {
        var v = Get(name);
        if (v is null) return;
        foreach (var n in neutralValues)
        {
            if (n is null) continue;
            if (JsonSerializer.SerializeToNode(n)?.ToJsonString() == v.ToJsonString()) return;
        }
        throw new ConfigException($"{Source}: field '{name}' = {v.ToJsonString()} is not supported ({why})");
    }

    /// <summary>Fails when a string field is not one of the allowed values.</summary>
    public string GetChoice(string name, string defaultValue, params string[] allowed)
    {
        var s = GetString(name, defaultValue);
        if (!allowed.Contains(s))
        {
            throw new ConfigException($"{Source}: field '{name}' = \"{s}\" is not supported (expected one of: {string.Join(", ", allowed)})");
        }
        return s;
    }
}
