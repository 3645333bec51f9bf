using System.Globalization;
using System.Text;
using System.Text.Json;
using Ddpo.Base;
using Tomlyn;
using Tomlyn.Model;

namespace Ddpo.Config;

/// <summary>
/// Reads TOML and JSON into a plain tree (string, long, double, bool, <see cref="List{T}"/> of object,
/// <see cref="Dictionary{TKey,TValue}"/> of string to object), converts tree values to key kinds, and
/// writes values back as TOML.
/// </summary>
internal static class ConfigValues
{
    /// <summary>Parses a TOML document; errors name <paramref name="source"/>.</summary>
    public static Dictionary<string, object> ParseToml(string text, string source)
    {
        TomlTable table;
        try
        {
            table = TomlSerializer.Deserialize<TomlTable>(text)
                ?? throw new ConfigException($"{source}: empty TOML document");
        }
        catch (TomlException e)
        {
            throw new ConfigException($"{source}: invalid TOML: {e.Message}", e);
        }
        return (Dictionary<string, object>)FromToml(table, source, "");
    }

    /// <summary>Parses a JSON document whose top level is an object; errors name <paramref name="source"/>.</summary>
    public static Dictionary<string, object> ParseJson(string text, string source)
    {
        try
        {
            using var doc = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, AllowDuplicateProperties = false });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ConfigException($"{source}: expected a JSON object at the top level");
            }
            return (Dictionary<string, object>)FromJson(doc.RootElement, source, "");
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{source}: invalid JSON: {e.Message}", e);
        }
    }

    /// <summary>Parses the value of a <c>--set</c> as a TOML value; false when it is not valid TOML.</summary>
    public static bool TryParseTomlValue(string raw, out object value)
    {
        value = null!;
        if (raw.Contains('\n') || raw.Contains('\r')) return false;
        try
        {
            var table = TomlSerializer.Deserialize<TomlTable>("v = " + raw);
            if (table is null || table.Count != 1 || !table.TryGetValue("v", out var v) || v is null) return false;
            value = FromToml(v, "--set", "v");
            return true;
        }
        catch (Exception e) when (e is TomlException or ConfigException)
        {
            return false;
        }
    }

    private static object FromToml(object value, string source, string path) => value switch
    {
        TomlTable t => t.ToDictionary(kv => kv.Key, kv => FromToml(kv.Value!, source, Join(path, kv.Key))),
        TomlArray a => a.Select((v, i) => FromToml(v!, source, $"{path}[{i}]")).ToList(),
        TomlTableArray ta => ta.Select((v, i) => FromToml(v, source, $"{path}[{i}]")).ToList(),
        string or long or double or bool => value,
        int i => (long)i,
        float f => (double)f,
        _ => throw new ConfigException($"{source}: {path}: unsupported TOML value {value} ({value.GetType().Name})"),
    };

    private static object FromJson(JsonElement e, string source, string path) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value, source, Join(path, p.Name))),
        JsonValueKind.Array => e.EnumerateArray().Select((v, i) => FromJson(v, source, $"{path}[{i}]")).ToList(),
        JsonValueKind.String => e.GetString()!,
        JsonValueKind.Number => e.TryGetInt64(out var l) ? (object)l : e.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new ConfigException($"{source}: {path}: null is not a value (omit the key to keep its default)"),
    };

    private static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;

    /// <summary>Converts a tree value to what a key of <paramref name="kind"/> holds, or throws <see cref="ConfigValueException"/>.</summary>
    public static object Convert(object value, ConfigValueKind kind) => kind switch
    {
        ConfigValueKind.Integer => value switch
        {
            long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
            long l => throw new ConfigValueException($"expected an integer in the 32-bit range, got {l}"),
            _ => throw new ConfigValueException($"expected an integer, got {Describe(value)}"),
        },
        ConfigValueKind.Float => value switch
        {
            double d => d,
            long l => (double)l,
            _ => throw new ConfigValueException($"expected a number, got {Describe(value)}"),
        },
        ConfigValueKind.Boolean => value is bool b ? b : throw new ConfigValueException($"expected true or false, got {Describe(value)}"),
        ConfigValueKind.String => value is string s ? s : throw new ConfigValueException($"expected a string, got {Describe(value)}"),
        ConfigValueKind.Table => value is Dictionary<string, object> t
            ? new Dictionary<string, object>(t)
            : throw new ConfigValueException($"expected a table, got {Describe(value)}"),
        ConfigValueKind.IntegerList => value is System.Collections.Generic.List<object> list
            ? list.Select((item, i) => item is long l && l is >= int.MinValue and <= int.MaxValue
                ? (int)l
                : throw new ConfigValueException($"expected an array of integers, got {Describe(item)} at index {i}")).ToArray()
            : throw new ConfigValueException($"expected an array of integers such as [0, 4], got {Describe(value)}"),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>A short description of a value for error messages.</summary>
    public static string Describe(object? value) => value switch
    {
        null => "nothing",
        string s => $"the string \"{s}\"",
        long or int => $"the integer {value}",
        double d => $"the number {ConfigSchema.Fmt(d)}",
        bool b => b ? "true" : "false",
        System.Collections.IDictionary => "a table",
        System.Collections.IList => "an array",
        _ => value.ToString() ?? value.GetType().Name,
    };

    /// <summary>Writes a value as TOML (tables inline).</summary>
    public static string ToToml(object value) => value switch
    {
        string s => Quote(s),
        bool b => b ? "true" : "false",
        int i => i.ToString(CultureInfo.InvariantCulture),
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatFloat(d),
        float f => FormatFloat(f),
        IDictionary<string, object> t => t.Count == 0
            ? "{}"
            : "{ " + string.Join(", ", t.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{Key(kv.Key)} = {ToToml(kv.Value)}")) + " }",
        System.Collections.IEnumerable list => "[" + string.Join(", ", list.Cast<object>().Select(ToToml)) + "]",
        _ => throw new ArgumentException($"cannot write {value.GetType().Name} as TOML"),
    };

    /// <summary>A key, bare when it can be, quoted otherwise.</summary>
    public static string Key(string key) =>
        key.Length > 0 && key.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '-') ? key : Quote(key);

    private static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        var s = d.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') || s.Contains('e') ? s : s + ".0";
    }

    private static string Quote(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (var ch in s)
        {
            switch (ch)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (char.IsControl(ch)) sb.Append($"\\u{(int)ch:X4}");
                    else sb.Append(ch);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
