using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ddpo.Runtime;

namespace Ddpo.Training;

/// <summary>
/// Appends one JSON object per line to <c>DIR/metrics.jsonl</c> and flushes after each, so a crashed run
/// keeps every line written. Non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity".
/// Thread-safe.
/// </summary>
internal sealed class MetricsWriter : IDisposable
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
        // A last line without its newline was being written when the run died; its epoch had no checkpoint
        // yet (lines are written before the checkpoint), so it goes too.
        var text = MetricsReader.ReadText(path, ignoreUnterminatedLastLine: true);
        var kept = new List<string>();
        int lineNumber = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var values = MetricsReader.ParseLine(line, path, lineNumber);
            if (!values.TryGetValue("epoch", out var epoch)) { kept.Add(line.TrimEnd('\r')); continue; }
            if (epoch is not double e || e != Math.Floor(e) || Math.Abs(e) > int.MaxValue)
            {
                throw new FormatException($"{path}:{lineNumber}: field 'epoch' is {epoch ?? "null"}, expected an integer");
            }
            if (e <= lastEpoch) kept.Add(line.TrimEnd('\r'));
        }
        AtomicFile.WriteAllLines(path, kept);
    }
}

/// <summary>Reads a <c>metrics.jsonl</c> written by <see cref="MetricsWriter"/>.</summary>
internal static class MetricsReader
{
    /// <summary>
    /// Every line as a dictionary: numbers become <see cref="double"/> (and "NaN"/"Infinity"/"-Infinity"
    /// too), strings, booleans and null stay, arrays become lists, objects dictionaries. Blank lines are
    /// skipped; a malformed line is a <see cref="FormatException"/> naming the file and line.
    /// </summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, object?>> ReadAll(string path)
    {
        return Parse(ReadText(path, ignoreUnterminatedLastLine: false), path);
    }

    /// <summary>
    /// Like <see cref="ReadAll(string)"/>, but a last line without its newline (a writer appending it right
    /// now: <see cref="MetricsWriter"/> always ends lines) is left out instead of being an error.
    /// </summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, object?>> ReadComplete(string path) =>
        Parse(ReadText(path, ignoreUnterminatedLastLine: true), path);

    /// <summary>
    /// The file's text, decoded as strict UTF-8 (an invalid byte is a <see cref="FormatException"/> naming the file
    /// and line, not a silent U+FFFD). A line being appended is cut off as bytes, before decoding, since it may
    /// end inside a multi-byte character.
    /// </summary>
    internal static string ReadText(string path, bool ignoreUnterminatedLastLine)
    {
        byte[] bytes;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        using (var memory = new MemoryStream())
        {
            stream.CopyTo(memory);
            bytes = memory.ToArray();
        }
        var complete = ignoreUnterminatedLastLine ? bytes.AsSpan(0, bytes.AsSpan().LastIndexOf((byte)'\n') + 1) : bytes;
        return Ddpo.Models.Loading.Utf8Text.Decode(complete, path, message => new FormatException(message));
    }

    private static IReadOnlyList<IReadOnlyDictionary<string, object?>> Parse(string text, string path)
    {
        var result = new List<IReadOnlyDictionary<string, object?>>();
        int lineNumber = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            result.Add(ParseLine(line, path, lineNumber));
        }
        return result;
    }

    /// <summary>One line as a dictionary (see <see cref="ReadAll"/>); a malformed line is a <see cref="FormatException"/> naming <c>path:line</c>.</summary>
    internal static Dictionary<string, object?> ParseLine(string line, string path, int lineNumber)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new FormatException($"a JSON {doc.RootElement.ValueKind}, expected an object");
            return (Dictionary<string, object?>)Convert(doc.RootElement)!;
        }
        // ArgumentException: a key repeated within the line.
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException)
        {
            throw new FormatException($"{path}:{lineNumber}: malformed metrics line ({e.Message})", e);
        }
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
