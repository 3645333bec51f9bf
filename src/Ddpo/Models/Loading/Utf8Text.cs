using System.Buffers;
using System.Text.Unicode;

namespace Ddpo.Models.Loading;

/// <summary>
/// Strict UTF-8 decoding for every text file the project parses. <see cref="File.ReadAllText(string)"/> silently
/// turns invalid bytes into U+FFFD, so a corrupt key or value would be read as a different, valid-looking string
/// (and System.Text.Json, given raw bytes, fails late with an unnamed <see cref="InvalidOperationException"/>);
/// here an invalid byte is an error naming the file, the byte offset and the line.
/// </summary>
internal static class Utf8Text
{
    private static ReadOnlySpan<byte> Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>
    /// Decodes <paramref name="bytes"/>; false (with the offset of the first invalid byte in
    /// <paramref name="invalidAt"/>) when they are not valid UTF-8. A leading byte-order mark is skipped.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> bytes, out string text, out int invalidAt)
    {
        int start = bytes.StartsWith(Bom) ? Bom.Length : 0;
        var source = bytes[start..];
        // UTF-16 never needs more code units than UTF-8 has bytes.
        var buffer = ArrayPool<char>.Shared.Rent(Math.Max(1, source.Length));
        try
        {
            var status = Utf8.ToUtf16(source, buffer, out int read, out int written, replaceInvalidSequences: false);
            if (status != OperationStatus.Done)
            {
                text = "";
                invalidAt = start + read;
                return false;
            }
            text = new string(buffer, 0, written);
            invalidAt = -1;
            return true;
        }
        finally
        {
            ArrayPool<char>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Decodes <paramref name="bytes"/> read from <paramref name="source"/>, or throws the exception made by
    /// <paramref name="error"/> from a message such as <c>SOURCE: not valid UTF-8 text (byte 0xFF at offset 17, line 2)</c>.
    /// </summary>
    public static string Decode(ReadOnlySpan<byte> bytes, string source, Func<string, Exception> error)
    {
        if (TryDecode(bytes, out var text, out int at)) return text;
        throw error($"{source}: not valid UTF-8 text ({DescribeInvalid(bytes, at)})");
    }

    /// <summary>Reads a whole file as strict UTF-8 (see <see cref="Decode"/>).</summary>
    public static string ReadFile(string path, Func<string, Exception> error) => Decode(File.ReadAllBytes(path), path, error);

    /// <summary>Where the invalid byte at <paramref name="offset"/> is, for messages: <c>byte 0xFF at offset 17, line 2</c>.</summary>
    public static string DescribeInvalid(ReadOnlySpan<byte> bytes, int offset)
    {
        int line = 1 + bytes[..Math.Min(offset, bytes.Length)].Count((byte)'\n');
        var value = offset < bytes.Length ? $"byte 0x{bytes[offset]:X2}" : "an incomplete multi-byte sequence";
        return $"{value} at offset {offset}, line {line}";
    }
}
