using System.Text;

namespace Ddpo.Tokenizers;

/// <summary>
/// sentencepiece's <c>Normalizer</c>: longest-prefix replacement from the precompiled character map (a darts-clone
/// double-array trie over UTF-8 bytes plus a blob of replacement strings; T5's <c>nmt_nfkc</c> = NFKC and NMT's
/// whitespace/control clean-up), dropping leading, trailing and repeated spaces, a dummy "▁" prefix and spaces as "▁".
/// </summary>
internal sealed class T5TokenizerNormalizer
{
    private const string Space = "\u2581";
    private readonly uint[] _trie;
    private readonly byte[] _normalized;
    private readonly bool _addDummyPrefix, _removeExtraWhitespaces, _escapeWhitespaces;

    public T5TokenizerNormalizer(T5TokenizerModelFile model, string source)
    {
        _addDummyPrefix = model.AddDummyPrefix;
        _removeExtraWhitespaces = model.RemoveExtraWhitespaces;
        _escapeWhitespaces = model.EscapeWhitespaces;
        var blob = model.PrecompiledCharsmap;
        if (blob is null || blob.Length == 0)
        {
            _trie = [];
            _normalized = [];
            return;
        }
        if (blob.Length < 4) throw new Models.Loading.ModelLoadException($"{source}: corrupt precompiled_charsmap (shorter than its header)");
        uint trieSize = BitConverter.ToUInt32(blob, 0);
        if (trieSize % 4 != 0 || trieSize > blob.Length - 4) throw new Models.Loading.ModelLoadException($"{source}: corrupt precompiled_charsmap (trie size {trieSize} of {blob.Length} bytes)");
        _trie = new uint[trieSize / 4];
        Buffer.BlockCopy(blob, 4, _trie, 0, (int)trieSize);
        _normalized = blob[(4 + (int)trieSize)..];
    }

    /// <summary>The normalised text (spaces as "▁"), empty when the input has nothing but whitespace.</summary>
    public string Normalize(string text)
    {
        var input = Encoding.UTF8.GetBytes(text);
        var output = new StringBuilder();
        int pos = 0;
        if (_removeExtraWhitespaces)
        {
            while (pos < input.Length)
            {
                var (piece, consumed) = NormalizePrefix(input, pos);
                if (piece != " ") break;
                pos += consumed;
            }
        }
        if (pos >= input.Length) return "";
        if (_addDummyPrefix) output.Append(_escapeWhitespaces ? Space : " ");
        bool prevSpace = _removeExtraWhitespaces;
        while (pos < input.Length)
        {
            var (piece, consumed) = NormalizePrefix(input, pos);
            int skip = 0;
            while (prevSpace && skip < piece.Length && piece[skip] == ' ') skip++;
            if (skip < piece.Length)
            {
                foreach (char c in piece.AsSpan(skip)) output.Append(_escapeWhitespaces && c == ' ' ? Space : c);
                prevSpace = piece[^1] == ' ';
            }
            pos += consumed;
            if (!_removeExtraWhitespaces) prevSpace = false;
        }
        if (_removeExtraWhitespaces)
        {
            string tail = _escapeWhitespaces ? Space : " ";
            while (output.Length > 0 && output[^1] == tail[0]) output.Length--;
        }
        return output.ToString();
    }

    /// <summary>The replacement of the longest map entry at <paramref name="pos"/>, else the next UTF-8 character unchanged.</summary>
    private (string Piece, int Consumed) NormalizePrefix(byte[] input, int pos)
    {
        int longest = 0;
        uint value = 0;
        if (_trie.Length > 0)
        {
            // darts-clone commonPrefixSearch: unit = [offset | has_leaf | label], value units at leaves.
            uint node = Offset(_trie[0]);
            for (int i = pos; i < input.Length; i++)
            {
                node ^= input[i];
                if (node >= _trie.Length) break;
                uint unit = _trie[node];
                if ((unit & ((1u << 31) | 0xFF)) != input[i]) break;
                node ^= Offset(unit);
                if (((unit >> 8) & 1) == 1 && node < _trie.Length)
                {
                    longest = i + 1 - pos;
                    value = _trie[node] & ((1u << 31) - 1);
                }
            }
        }
        if (longest > 0)
        {
            int end = (int)value;
            while (end < _normalized.Length && _normalized[end] != 0) end++;
            return (Encoding.UTF8.GetString(_normalized, (int)value, end - (int)value), longest);
        }
        int length = Utf8Length(input, pos);
        if (length == 0) return ("\uFFFD", 1);
        return (Encoding.UTF8.GetString(input, pos, length), length);
    }

    private static uint Offset(uint unit) => (unit >> 10) << (int)((unit & (1u << 9)) >> 6);

    /// <summary>The byte length of a valid UTF-8 character at <paramref name="pos"/>, or 0 when malformed.</summary>
    private static int Utf8Length(byte[] b, int pos)
    {
        byte c = b[pos];
        int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || pos + n > b.Length) return 0;
        for (int i = 1; i < n; i++) if ((b[pos + i] & 0xC0) != 0x80) return 0;
        return n;
    }
}
