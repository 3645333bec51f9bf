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

    /// <summary>
    /// Drops the lines of epochs after <paramref name="lastEpoch"/> (left by a run killed after its
    /// last checkpoint), so that a resumed run appends exactly what an uninterrupted run would have.
    /// The file is rewritten atomically.
    /// </summary>
    public static void TruncateAfter(string path, int lastEpoch)
    {
        if (!File.Exists(path)) return;
        var kept = File.ReadAllLines(path).Where(line =>
        {
            if (string.IsNullOrWhiteSpace(line)) return false;
            using var doc = JsonDocument.Parse(line);
            return !doc.RootElement.TryGetProperty("epoch", out var e) || e.GetInt32() <= lastEpoch;
        }).ToList();
        var temp = path + ".tmp";
        File.WriteAllLines(temp, kept);
        File.Move(temp, path, overwrite: true);
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
        return Parse(ReadShared(path), path, ignoreUnterminatedLastLine: false);
    }

    /// <summary>
    /// Like <see cref="ReadAll(string)"/>, but a last line without its newline (a writer appending it right
    /// now: <see cref="MetricsWriter"/> always ends lines) is left out instead of being an error.
    /// </summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, object?>> ReadComplete(string path) =>
        Parse(ReadShared(path), path, ignoreUnterminatedLastLine: true);

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static IReadOnlyList<IReadOnlyDictionary<string, object?>> Parse(string text, string path, bool ignoreUnterminatedLastLine)
    {
        if (ignoreUnterminatedLastLine && text.Length > 0 && text[^1] != '\n')
        {
            text = text[..(text.LastIndexOf('\n') + 1)];
        }
        var result = new List<IReadOnlyDictionary<string, object?>>();
        int lineNumber = 0;
        foreach (var line in text.Split('\n'))
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
