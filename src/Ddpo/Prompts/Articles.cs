namespace Ddpo.Prompts;

/// <summary>Chooses "a" or "an" by the sound of the next word (a small subset of the inflect package's rules).</summary>
internal static class Articles
{
    // Words spelt with a vowel but said with a consonant sound: "a unicorn", "a ewe", "a one-eyed cat".
    private static readonly string[] ConsonantSoundPrefixes =
        ["uni", "use", "usu", "uti", "ura", "ure", "uri", "uro", "ubi", "uga", "uke", "uku", "eu", "ewe", "one", "once", "ouija"];

    // Words spelt with a silent h: "an hour", "an honest fox".
    private static readonly string[] SilentHPrefixes = ["hour", "honest", "honor", "honour", "heir"];

    /// <summary>"a" or "an" for <paramref name="word"/> (its first word decides).</summary>
    public static string AOrAn(string word)
    {
        var w = word.TrimStart().ToLowerInvariant();
        if (w.Length == 0) return "a";
        if (SilentHPrefixes.Any(p => w.StartsWith(p, StringComparison.Ordinal))) return "an";
        if (ConsonantSoundPrefixes.Any(p => w.StartsWith(p, StringComparison.Ordinal))) return "a";
        if (char.IsAsciiDigit(w[0])) return SaidWithVowel(w) ? "an" : "a";
        return "aeiou".Contains(w[0]) ? "an" : "a";
    }

    // "an 8", "an 80", "an 11", "an 18" (but "a 1", "a 110").
    private static bool SaidWithVowel(string number)
    {
        int digits = number.TakeWhile(char.IsAsciiDigit).Count();
        return number[0] == '8' || (digits == 2 && number[0] == '1' && number[1] is '1' or '8');
    }

    /// <summary><paramref name="word"/> with its article, e.g. "an elephant", "a horse".</summary>
    public static string WithArticle(string word) => $"{AOrAn(word)} {word.Trim()}";
}
