namespace Ddpo.Tokenizers;

/// <summary>
/// The reversible byte-to-character table of GPT-2 / CLIP (<c>bytes_to_unicode</c>): printable Latin-1
/// bytes map to themselves, the other 68 bytes to U+0100 onwards, so every UTF-8 byte becomes one
/// visible character and BPE can run on strings.
/// </summary>
internal static class ClipByteEncoder
{
    /// <summary>The character standing for each byte value (index = byte).</summary>
    public static IReadOnlyList<char> ByteToChar { get; } = Build();

    /// <summary>The 256 base symbols in CLIP's vocabulary order (the order of <c>bytes_to_unicode().values()</c>).</summary>
    public static IReadOnlyList<char> VocabularyOrder { get; } = BuildOrder();

    /// <summary>Encodes a string's UTF-8 bytes as byte characters.</summary>
    public static string Encode(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    private static List<int> PrintableBytes()
    {
        var bs = new List<int>();
        for (int b = '!'; b <= '~'; b++) bs.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.Add(b);
        return bs;
    }

    private static char[] Build()
    {
        var table = new char[256];
        var printable = PrintableBytes();
        foreach (var b in printable) table[b] = (char)b;
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            if (!printable.Contains(b)) table[b] = (char)(256 + n++);
        }
        return table;
    }

    private static char[] BuildOrder()
    {
        var printable = PrintableBytes();
        var order = printable.Select(b => (char)b).ToList();
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            if (!printable.Contains(b)) order.Add((char)(256 + n++));
        }
        return order.ToArray();
    }
}
