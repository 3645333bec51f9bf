using System.Globalization;
using System.Net;
using System.Text;

namespace Ddpo.Tokenizers;

/// <summary>
/// The text clean-up and pre-tokenization of openai/CLIP's <c>simple_tokenizer.py</c>:
/// HTML-unescape (twice), collapse whitespace, strip, lower-case (Python's <c>str.lower</c>, including
/// U+0130 and the final sigma), then split with CLIP's pattern
/// <c>&lt;|startoftext|&gt;|&lt;|endoftext|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>.
/// <c>ftfy.fix_text</c> is not applied (treated as identity), and HTML entities are decoded by
/// <see cref="WebUtility.HtmlDecode(string)"/>, which differs from Python's <c>html.unescape</c> only on
/// malformed or semicolon-less entities.
/// </summary>
internal static class ClipTextNormalizer
{
    private static readonly string[] Specials = [ClipTokenizer.StartOfTextToken, ClipTokenizer.EndOfTextToken];
    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    /// <summary>Cleans and lower-cases <paramref name="text"/>, then splits it into pre-tokens.</summary>
    public static List<string> PreTokenize(string text)
    {
        var clean = Lower(CollapseWhitespace(WebUtility.HtmlDecode(WebUtility.HtmlDecode(text))));
        return Split(clean);
    }

    /// <summary>Python's <c>str.isspace</c> (Unicode White_Space plus the separators U+001C..U+001F).</summary>
    private static bool IsSpace(Rune r) => Rune.IsWhiteSpace(r) || (r.Value >= 0x1C && r.Value <= 0x1F);

    private static bool IsLetter(Rune r) => Rune.IsLetter(r);

    private static bool IsNumber(Rune r) => Rune.GetUnicodeCategory(r) is
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    private static string CollapseWhitespace(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool pendingSpace = false;
        foreach (var r in text.EnumerateRunes())
        {
            if (IsSpace(r))
            {
                pendingSpace = sb.Length > 0;
                continue;
            }
            if (pendingSpace) sb.Append(' ');
            pendingSpace = false;
            sb.Append(r.ToString());
        }
        return sb.ToString();
    }

    /// <summary>Python's <c>str.lower()</c>: full lower-case mapping (U+0130 becomes "i̇") and the final-sigma rule.</summary>
    private static string Lower(string text)
    {
        var runes = text.EnumerateRunes().ToArray();
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < runes.Length; i++)
        {
            var r = runes[i];
            if (r.Value == 0x130) sb.Append("i\u0307");
            else if (r.Value == 0x3A3) sb.Append(IsFinalSigma(runes, i) ? '\u03C2' : '\u03C3');
            else sb.Append(Rune.ToLowerInvariant(r).ToString());
        }
        return sb.ToString();
    }

    private static bool IsCased(Rune r) => Rune.GetUnicodeCategory(r) is
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || r.Value is '\'' or '.' or ':' or 0xB7 or 0x387 or 0x2018 or 0x2019 or 0x2024 or 0x2027
            or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;

    private static bool IsFinalSigma(Rune[] runes, int i)
    {
        int j = i - 1;
        while (j >= 0 && IsCaseIgnorable(runes[j])) j--;
        if (j < 0 || !IsCased(runes[j])) return false;
        j = i + 1;
        while (j < runes.Length && IsCaseIgnorable(runes[j])) j++;
        return j == runes.Length || !IsCased(runes[j]);
    }

    /// <summary>The matches of CLIP's pattern, left to right (text is already lower-case).</summary>
    private static List<string> Split(string text)
    {
        var pieces = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            var r = RuneAt(text, i, out int length);
            if (IsSpace(r))
            {
                i += length;
                continue;
            }
            int end = MatchAt(text, i, r, length);
            pieces.Add(text[i..end]);
            i = end;
        }
        return pieces;
    }

    private static int MatchAt(string text, int start, Rune first, int firstLength)
    {
        foreach (var literal in Specials.Concat(Contractions))
        {
            if (string.CompareOrdinal(text, start, literal, 0, literal.Length) == 0) return start + literal.Length;
        }
        if (IsLetter(first)) return RunEnd(text, start, IsLetter);
        if (IsNumber(first)) return start + firstLength;
        return RunEnd(text, start, r => !IsSpace(r) && !IsLetter(r) && !IsNumber(r));
    }

    /// <summary>The rune at <paramref name="index"/>; a lone surrogate reads as U+FFFD of length 1.</summary>
    private static Rune RuneAt(string text, int index, out int length)
    {
        Rune.DecodeFromUtf16(text.AsSpan(index), out var rune, out length);
        return rune;
    }

    private static int RunEnd(string text, int start, Func<Rune, bool> belongs)
    {
        int i = start;
        while (i < text.Length)
        {
            var r = RuneAt(text, i, out int length);
            if (!belongs(r)) break;
            i += length;
        }
        return i;
    }
}
