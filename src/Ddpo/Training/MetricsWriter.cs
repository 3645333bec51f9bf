using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ddpo.Training;

/// <summary>
/// Appends one JSON object per line to <c>DIR/metrics.jsonl</c> and flushes after each, so a crashed run
/// keeps every line written. Non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity".
/// Thread-safe.
/// </summary>
public sealed class MetricsWriter : IDisposable
{
    /// <summary>The file name inside the run folder.</summary>
    public const string FileName = "metrics.jsonl";

    internal static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = false,
    };

    private readonly StreamWriter _writer;
    private readonly object _lock = new();

    /// <summary>Opens (appending to) <c>metrics.jsonl</c> in <paramref name="directory"/>, creating the folder.</summary>
    public MetricsWriter(string directory)
    {
        Directory.CreateDirectory(directory);
        Path = System.IO.Path.Combine(directory, FileName);
        _writer = new StreamWriter(new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
    }

    /// <summary>The file being written.</summary>
    public string Path { get; }

    /// <summary>
    /// Writes <paramref name="values"/> as one line (numbers, strings, booleans, null, arrays and nested
    /// dictionaries of those) and flushes it to disk.
    /// </summary>
    public void Write(IReadOnlyDictionary<string, object?> values)
    {
        var line = JsonSerializer.Serialize(values, Options);
        lock (_lock)
        {
            _writer.Write(line);
            _writer.Write('\n');
            _writer.Flush();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock) _writer.Dispose();
    }
}

/// <summary>Reads a <c>metrics.jsonl</c> written by <see cref="MetricsWriter"/>.</summary>
public static class MetricsReader
{
    /// <summary>
    /// Every line as a dictionary: numbers become <see cref="double"/> (and "NaN"/"Infinity"/"-Infinity"
    /// too), strings, booleans and null stay, arrays become lists, objects dictionaries. Blank lines are
    /// skipped; a malformed line is a <see cref="FormatException"/> naming the file and line.
    /// </summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, object?>> ReadAll(string path)
    {
        var result = new List<IReadOnlyDictionary<string, object?>>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new FormatException("not a JSON object");
                result.Add((Dictionary<string, object?>)Convert(doc.RootElement)!);
            }
            catch (Exception e) when (e is JsonException or FormatException)
            {
                throw new FormatException($"{path}:{lineNumber}: malformed metrics line ({e.Message})", e);
            }
        }
        return result;
    }

    private static object? Convert(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => Convert(p.Value)),
        JsonValueKind.Array => e.EnumerateArray().Select(Convert).ToList(),
        JsonValueKind.Number => e.GetDouble(),
        JsonValueKind.String => e.GetString() switch
        {
            "NaN" => double.NaN,
            "Infinity" => double.PositiveInfinity,
            "-Infinity" => double.NegativeInfinity,
            var s => s,
        },
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };
}
