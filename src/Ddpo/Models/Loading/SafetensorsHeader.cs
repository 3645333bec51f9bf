using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using static TorchSharp.torch;

namespace Ddpo.Models.Loading;

/// <summary>One tensor of a safetensors header: dtype, shape and its byte range in the data section.</summary>
/// <param name="Name">The tensor's key.</param>
/// <param name="Dtype">The safetensors dtype name (<c>F32</c>, <c>BF16</c>, ...).</param>
/// <param name="Shape">The dimensions (none for a scalar).</param>
/// <param name="Begin">First byte in the data section (after the header).</param>
/// <param name="End">One past the last byte in the data section.</param>
internal sealed record SafetensorsEntry(string Name, string Dtype, long[] Shape, long Begin, long End);

/// <summary>
/// The header of a safetensors file, checked completely before any tensor is made: the 8-byte little-endian
/// length fits the file, the header is UTF-8 JSON (an object), every entry has a known dtype, a shape of
/// non-negative integers whose element count does not overflow, and <c>data_offsets</c> [begin, end] inside the
/// data section holding exactly element count x dtype size bytes, with no two tensors overlapping;
/// <c>__metadata__</c> is a string-to-string map. Each problem is a <see cref="ModelLoadException"/> naming the
/// file, the tensor and what was expected.
/// </summary>
internal sealed class SafetensorsHeader
{
    /// <summary>The largest header accepted (the reference implementation's limit is 100 MB too).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The largest element count of one tensor (2^62: far above any real model, and overflow-free in bytes).</summary>
    private const long MaxElements = 1L << 62;

    /// <summary>The dtypes we can load, with their sizes in bytes and TorchSharp types.</summary>
    public static readonly IReadOnlyDictionary<string, (int Size, ScalarType Type)> Dtypes = new Dictionary<string, (int, ScalarType)>
    {
        ["F64"] = (8, ScalarType.Float64),
        ["F32"] = (4, ScalarType.Float32),
        ["F16"] = (2, ScalarType.Float16),
        ["BF16"] = (2, ScalarType.BFloat16),
        ["I64"] = (8, ScalarType.Int64),
        ["I32"] = (4, ScalarType.Int32),
        ["I16"] = (2, ScalarType.Int16),
        ["I8"] = (1, ScalarType.Int8),
        ["U8"] = (1, ScalarType.Byte),
        ["BOOL"] = (1, ScalarType.Bool),
    };

    private SafetensorsHeader(string path, long headerLength, long dataLength,
        IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        HeaderLength = headerLength;
        DataLength = dataLength;
        Entries = entries;
        Metadata = metadata;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The header's length in bytes (after the 8-byte length field).</summary>
    public long HeaderLength { get; }

    /// <summary>Where the data section starts in the file.</summary>
    public long DataStart => 8 + HeaderLength;

    /// <summary>The data section's length in bytes.</summary>
    public long DataLength { get; }

    /// <summary>The tensors, in header order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    /// <summary>The <c>__metadata__</c> map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Reads and checks the header of <paramref name="path"/>.</summary>
    public static SafetensorsHeader Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelLoadException($"{path}: weight file not found");
        }
        using var stream = File.OpenRead(path);
        return Read(stream, path);
    }

    /// <summary>Reads and checks the header from the start of <paramref name="stream"/> (a file named <paramref name="path"/> in messages).</summary>
    public static SafetensorsHeader Read(Stream stream, string path)
    {
        stream.Position = 0;
        long length = stream.Length;
        if (length < 8)
        {
            throw Corrupt(path, $"{length} bytes, too short for the 8-byte header length (expected at least 8 bytes)");
        }
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength < 2)
        {
            throw Corrupt(path, $"the header length field says {headerLength} bytes, expected at least 2 (the smallest header is {{}})");
        }
        if (headerLength > MaxHeaderBytes)
        {
            throw Corrupt(path, $"the header length field says {headerLength} bytes, expected at most {MaxHeaderBytes} (not a safetensors file?)");
        }
        if (headerLength > (ulong)(length - 8))
        {
            throw Corrupt(path, $"the header length field says {headerLength} bytes but only {length - 8} bytes follow it (truncated file?)");
        }
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        return Parse(path, headerBytes, length - 8 - (long)headerLength);
    }

    private static SafetensorsHeader Parse(string path, byte[] headerBytes, long dataLength)
    {
        // Decoded strictly first: System.Text.Json given invalid UTF-8 in a key fails only when the key is
        // read, with an InvalidOperationException that names nothing.
        if (!Utf8Text.TryDecode(headerBytes, out var text, out int invalidAt))
        {
            throw Corrupt(path, $"the header is not valid UTF-8 ({Utf8Text.DescribeInvalid(headerBytes, invalidAt)} of the header{StringAround(headerBytes, invalidAt)}); expected UTF-8 JSON");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw Corrupt(path, $"the header is not valid JSON ({e.Message})", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Corrupt(path, $"the header is a JSON {Kind(doc.RootElement)}, expected an object mapping tensor names to entries");
            }
            var entries = new List<SafetensorsEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                {
                    throw Corrupt(path, $"key {Quote(property.Name)} appears twice in the header, expected unique tensor names");
                }
                if (property.Name == "__metadata__")
                {
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }
                entries.Add(ReadEntry(path, property.Name, property.Value, dataLength));
            }
            CheckNoOverlap(path, entries);
            return new SafetensorsHeader(path, headerBytes.LongLength, dataLength, entries, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Corrupt(path, $"'__metadata__' is a JSON {Kind(value)}, expected an object of string values");
        }
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw Corrupt(path, $"'__metadata__' entry {Quote(item.Name)} is a JSON {Kind(item.Value)}, expected a string");
            }
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static SafetensorsEntry ReadEntry(string path, string name, JsonElement value, long dataLength)
    {
        ModelLoadException Bad(string problem) => Corrupt(path, $"tensor {Quote(name)}: {problem}");

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Bad($"entry is a JSON {Kind(value)}, expected an object with dtype, shape and data_offsets");
        }
        if (!value.TryGetProperty("dtype", out var dtypeNode) || dtypeNode.ValueKind != JsonValueKind.String)
        {
            throw Bad($"'dtype' is {Describe(value, "dtype")}, expected a string");
        }
        var dtype = dtypeNode.GetString()!;
        if (!Dtypes.TryGetValue(dtype, out var info))
        {
            throw Bad($"dtype {Quote(dtype)} is not supported, expected one of {string.Join(", ", Dtypes.Keys)}");
        }
        if (!value.TryGetProperty("shape", out var shapeNode) || shapeNode.ValueKind != JsonValueKind.Array)
        {
            throw Bad($"'shape' is {Describe(value, "shape")}, expected an array of non-negative integers");
        }
        var shape = new long[shapeNode.GetArrayLength()];
        long elements = 1;
        int i = 0;
        foreach (var dim in shapeNode.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out shape[i]) || shape[i] < 0)
            {
                throw Bad($"shape {shapeNode.GetRawText()} has {dim.GetRawText()} at index {i}, expected a non-negative integer");
            }
            // Positive dimensions must multiply without overflow even when another is 0, so that libtorch
            // never sees a shape whose strides overflow.
            if (shape[i] > 0)
            {
                var product = (Int128)elements * shape[i];
                if (product > MaxElements)
                {
                    throw Bad($"shape {shapeNode.GetRawText()} has more than 2^62 elements (the product of its dimensions overflows), expected a real tensor's shape");
                }
                elements = (long)product;
            }
            i++;
        }
        if (shape.Contains(0)) elements = 0;
        if (!value.TryGetProperty("data_offsets", out var offsetsNode) || offsetsNode.ValueKind != JsonValueKind.Array
            || offsetsNode.GetArrayLength() != 2)
        {
            throw Bad($"'data_offsets' is {Describe(value, "data_offsets")}, expected [begin, end]");
        }
        var begin = offsetsNode[0];
        var end = offsetsNode[1];
        if (begin.ValueKind != JsonValueKind.Number || !begin.TryGetInt64(out long b) || b < 0
            || end.ValueKind != JsonValueKind.Number || !end.TryGetInt64(out long e) || e < 0)
        {
            throw Bad($"data_offsets {offsetsNode.GetRawText()} are not two non-negative integers, expected [begin, end]");
        }
        if (b > e)
        {
            throw Bad($"data_offsets [{b}, {e}] begin after they end, expected begin <= end");
        }
        if (e > dataLength)
        {
            throw Corrupt(path, $"tensor {Quote(name)}: data_offsets [{b}, {e}] end past the data section's {dataLength} bytes, expected end <= {dataLength} (truncated file?)",
                kind: "truncated");
        }
        var expectedBytes = (Int128)elements * info.Size;
        if (e - b != expectedBytes)
        {
            throw Bad($"data_offsets [{b}, {e}] hold {e - b} bytes, expected {expectedBytes} ({elements} elements of {dtype}, {info.Size} bytes each, for shape {shapeNode.GetRawText()})");
        }
        return new SafetensorsEntry(name, dtype, shape, b, e);
    }

    private static void CheckNoOverlap(string path, List<SafetensorsEntry> entries)
    {
        SafetensorsEntry? previous = null;
        foreach (var entry in entries.Where(x => x.End > x.Begin).OrderBy(x => x.Begin).ThenBy(x => x.End))
        {
            if (previous is not null && entry.Begin < previous.End)
            {
                throw Corrupt(path, $"tensor {Quote(entry.Name)}: data_offsets [{entry.Begin}, {entry.End}] overlap those of tensor " +
                    $"{Quote(previous.Name)} [{previous.Begin}, {previous.End}], expected each tensor's bytes to be its own");
            }
            previous = entry;
        }
    }

    /// <summary>
    /// The JSON string holding the invalid byte at <paramref name="offset"/> (usually a tensor key), non-ASCII
    /// bytes shown as <c>\xFF</c>, so the user can tell which tensor is damaged; empty when there is none.
    /// </summary>
    private static string StringAround(byte[] header, int offset)
    {
        int start = offset > 0 ? Array.LastIndexOf(header, (byte)'"', offset - 1) : -1;
        int end = Array.IndexOf(header, (byte)'"', offset);
        if (start < 0 || end < 0 || end - start > 240) return "";
        var shown = new System.Text.StringBuilder();
        foreach (byte b in header.AsSpan(start + 1, end - start - 1))
        {
            if (b is >= 0x20 and < 0x7F) shown.Append((char)b);
            else shown.Append($"\\x{b:X2}");
        }
        return $", in the string \"{shown}\"";
    }

    private static string Describe(JsonElement entry, string field) =>
        entry.TryGetProperty(field, out var v) ? $"{v.GetRawText()} (a JSON {Kind(v)})" : "missing";

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };

    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>A key for messages: in single quotes, control characters escaped, long keys shortened.</summary>
    internal static string Quote(string key)
    {
        var shown = key.Length <= 120 ? key : key[..120] + "...";
        return "'" + JsonSerializer.Serialize(shown, Relaxed)[1..^1] + "'";
    }

    private static ModelLoadException Corrupt(string path, string problem, Exception? inner = null, string kind = "corrupt") =>
        new($"{path}: {kind} safetensors file: {problem}", inner);
}
