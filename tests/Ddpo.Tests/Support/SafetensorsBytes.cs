using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace Ddpo.Tests.Support;

/// <summary>
/// Takes a safetensors file apart (8-byte length, JSON header, data) and puts it back together with any
/// header, so tests can write the corrupt files real users meet.
/// </summary>
internal sealed class SafetensorsBytes
{
    private SafetensorsBytes(JsonObject header, byte[] data)
    {
        Header = header;
        Data = data;
    }

    /// <summary>The parsed header (a fresh copy per <see cref="Read"/>: edit freely).</summary>
    public JsonObject Header { get; }

    /// <summary>The data section.</summary>
    public byte[] Data { get; }

    /// <summary>Splits a file's bytes.</summary>
    public static SafetensorsBytes Parse(byte[] file)
    {
        var length = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = JsonNode.Parse(file.AsSpan(8, length))!.AsObject();
        return new SafetensorsBytes(header, file[(8 + length)..]);
    }

    /// <summary>Reads and splits a file.</summary>
    public static SafetensorsBytes Read(string path) => Parse(File.ReadAllBytes(path));

    /// <summary>The tensor entries (not <c>__metadata__</c>), in header order.</summary>
    public IEnumerable<(string Name, JsonObject Entry)> Tensors =>
        Header.Where(kv => kv.Key != "__metadata__").Select(kv => (kv.Key, kv.Value!.AsObject()));

    /// <summary>The file with the current header.</summary>
    public byte[] ToBytes() => Assemble(Encoding.UTF8.GetBytes(Header.ToJsonString()), Data);

    /// <summary>A file from raw header bytes and data; <paramref name="lengthField"/> overrides the length written.</summary>
    public static byte[] Assemble(byte[] header, byte[] data, ulong? lengthField = null)
    {
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, lengthField ?? (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }

    /// <summary>The file with byte <paramref name="value"/> in place of the first byte of the key <paramref name="key"/> in the header.</summary>
    public byte[] WithKeyByte(string key, byte value)
    {
        var header = Encoding.UTF8.GetBytes(Header.ToJsonString());
        int at = header.AsSpan().IndexOf(Encoding.UTF8.GetBytes($"\"{key}\""));
        if (at < 0) throw new ArgumentException($"key {key} not in the header");
        header[at + 1] = value;
        return Assemble(header, Data);
    }
}
