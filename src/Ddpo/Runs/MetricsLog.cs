using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Ddpo.Runtime;

namespace Ddpo.Runs;

/// <summary>
/// A run's <c>metrics.jsonl</c>: one <see cref="EpochMetrics"/> per line, written and read by System.Text.Json with
/// the same <see cref="Options"/>. Each line is flushed as it is appended, so a crashed run keeps every line written.
/// Non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity". Appending is thread-safe.
/// </summary>
internal sealed class MetricsLog : IDisposable
{
    /// <summary>How lines are written and read: no indentation, non-finite numbers as named strings, no repeated keys.</summary>
    internal static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = false,
        AllowDuplicateProperties = false,
        Converters = { new LenientDoubleConverter() },
        // epoch is a required member in C#; read, its absence is reported as a bad epoch (EpochMetrics.OnDeserialized).
        TypeInfoResolver = new DefaultJsonTypeInfoResolver
        {
            Modifiers =
            {
                info =>
                {
                    if (info.Type != typeof(EpochMetrics)) return;
                    foreach (var p in info.Properties) p.IsRequired = false;
                },
            },
        },
    };

    private readonly StreamWriter _writer;
    private readonly object _lock = new();

    /// <summary>Opens (appending to) the metrics file <paramref name="path"/>, creating its folder.</summary>
    public MetricsLog(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _writer = new StreamWriter(new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
    }

    /// <summary>The file being written.</summary>
    public string Path { get; }

    /// <summary>Writes <paramref name="metrics"/> as one line and flushes it to disk.</summary>
    public void Append(EpochMetrics metrics)
    {
        var line = Serialize(metrics);
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

    /// <summary>The line of <paramref name="metrics"/> (without its newline).</summary>
    public static string Serialize(EpochMetrics metrics) => JsonSerializer.Serialize(metrics, Options);

    /// <summary>
    /// One line; a malformed one (not a JSON object, a repeated key) is a <see cref="FormatException"/> naming
    /// <paramref name="source"/>, one without a whole-number <c>epoch</c> one naming <paramref name="record"/> (default:
    /// <paramref name="source"/>), which also becomes <see cref="EpochMetrics.Source"/>.
    /// </summary>
    public static EpochMetrics Parse(string line, string source, string? record = null)
    {
        record ??= source;
        try
        {
            var metrics = JsonSerializer.Deserialize<EpochMetrics>(line, Options) ?? throw new FormatException("a JSON Null, expected an object");
            return metrics with { Source = record };
        }
        catch (BadEpochException e)
        {
            throw new FormatException($"{record}: {e.Message}", e);
        }
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException or InvalidOperationException)
        {
            throw new FormatException($"{source}: malformed metrics line ({e.Message})", e);
        }
    }

    /// <summary>
    /// Every line of the file (blank lines skipped); a malformed line is a <see cref="FormatException"/> naming the file and line.
    /// </summary>
    public static IReadOnlyList<EpochMetrics> ReadAll(string path) => ParseAll(ReadText(path, ignoreUnterminatedLastLine: false), path);

    /// <summary>
    /// Like <see cref="ReadAll(string)"/>, but a last line without its newline (a writer appending it right
    /// now: <see cref="Append"/> always ends lines) is left out instead of being an error.
    /// </summary>
    public static IReadOnlyList<EpochMetrics> ReadComplete(string path) => ParseAll(ReadText(path, ignoreUnterminatedLastLine: true), path);

    /// <summary>
    /// Drops the lines of epochs after <paramref name="lastEpoch"/> (left by a run killed after its
    /// last checkpoint), so that a resumed run appends exactly what an uninterrupted run would have.
    /// The lines kept are kept byte for byte; the file is rewritten atomically.
    /// </summary>
    public static void TruncateAfter(string path, int lastEpoch)
    {
        if (!File.Exists(path)) return;
        // A last line without its newline was being written when the run died; its epoch had no checkpoint
        // yet (lines are written before the checkpoint), so it goes too.
        var text = ReadText(path, ignoreUnterminatedLastLine: true);
        var kept = new List<string>();
        int lineNumber = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var epoch = EpochOf(line, path, lineNumber);
            if (epoch is null || epoch <= lastEpoch) kept.Add(line.TrimEnd('\r'));
        }
        AtomicFile.WriteAllLines(path, kept);
    }

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

    private static List<EpochMetrics> ParseAll(string text, string path)
    {
        var result = new List<EpochMetrics>();
        int lineNumber = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            result.Add(Parse(line, $"{path}:{lineNumber}", $"{path} record {result.Count + 1}"));
        }
        return result;
    }

    /// <summary>A line's <c>epoch</c>, or null where it has none (such a line is kept); a malformed line is a <see cref="FormatException"/>.</summary>
    private static double? EpochOf(string line, string path, int lineNumber)
    {
        JsonElement epoch;
        try
        {
            using var doc = JsonDocument.Parse(line, new JsonDocumentOptions { AllowDuplicateProperties = false });
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new FormatException($"a JSON {doc.RootElement.ValueKind}, expected an object");
            if (!doc.RootElement.TryGetProperty("epoch", out var e)) return null;
            epoch = e.Clone();
        }
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException)
        {
            throw new FormatException($"{path}:{lineNumber}: malformed metrics line ({e.Message})", e);
        }
        if (EpochMetrics.AsNumber(epoch) is not { } d || d != Math.Floor(d) || Math.Abs(d) > int.MaxValue)
        {
            var got = epoch.ValueKind switch
            {
                JsonValueKind.String => epoch.GetString(),
                JsonValueKind.Null => "null",
                _ => epoch.GetRawText(),
            };
            throw new FormatException($"{path}:{lineNumber}: field 'epoch' is {got}, expected an integer");
        }
        return d;
    }

    /// <summary>
    /// A number field: a JSON number, or "NaN", "Infinity", "-Infinity"; anything else a line may hold there (null, another
    /// string, a boolean, an object) reads as NaN, as older versions read it. Written as System.Text.Json writes a double
    /// with <see cref="JsonNumberHandling.AllowNamedFloatingPointLiterals"/>.
    /// </summary>
    private sealed class LenientDoubleConverter : JsonConverter<double>
    {
        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.Number:
                    return reader.TryGetDouble(out var d) ? d : double.NaN;
                case JsonTokenType.String:
                    return reader.GetString() switch
                    {
                        "NaN" => double.NaN,
                        "Infinity" => double.PositiveInfinity,
                        "-Infinity" => double.NegativeInfinity,
                        _ => double.NaN,
                    };
                default:
                    reader.Skip();
                    return double.NaN;
            }
        }

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
        {
            if (double.IsNaN(value)) writer.WriteStringValue("NaN");
            else if (double.IsPositiveInfinity(value)) writer.WriteStringValue("Infinity");
            else if (double.IsNegativeInfinity(value)) writer.WriteStringValue("-Infinity");
            else writer.WriteNumberValue(value);
        }
    }
}

/// <summary>A metrics line's <c>epoch</c> is missing or not a non-negative whole number.</summary>
internal sealed class BadEpochException(string got) : JsonException($"field 'epoch' must be a non-negative whole number, got {got}");
