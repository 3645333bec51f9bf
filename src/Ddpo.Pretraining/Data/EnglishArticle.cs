namespace Ddpo.Data;

/// <summary>
/// Chooses the English indefinite article ("a" or "an") for a noun by its first sound.
/// Kept local to the data generator; the prompt code may have its own.
/// </summary>
internal static class EnglishArticle
{
    // Vowel letter but consonant sound ("a unicorn", "a one-eyed ..."), and silent h ("an hour").
    private static readonly string[] ConsonantSoundPrefixes = ["uni", "use", "usu", "ute", "uro", "eu", "ewe", "one", "once"];
    private static readonly string[] VowelSoundPrefixes = ["hour", "honest", "honou", "heir"];

    /// <summary>"an" when <paramref name="word"/> starts with a vowel sound (elephant, owl, otter, ant, hour), else "a".</summary>
    public static string For(string word)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(word);
        var w = word.TrimStart().ToLowerInvariant();
        if (VowelSoundPrefixes.Any(w.StartsWith)) return "an";
        if (ConsonantSoundPrefixes.Any(w.StartsWith)) return "a";
        return "aeiou".Contains(w[0]) ? "an" : "a";
    }

    /// <summary>The phrase with its article: "a cat", "an owl".</summary>
    public static string WithArticle(string phrase) => $"{For(phrase)} {phrase}";
}
