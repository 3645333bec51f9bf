using Ddpo.Base;
using Ddpo.Text;

namespace Ddpo.Rewards.Ocr;

/// <summary>
/// The text a prompt asks to be written and the OCR score of a recognised text against it, as Flow-GRPO's
/// <c>flow_grpo/ocr.py</c> (<c>OcrScorer.__call__</c>, yifan123/flow_grpo at fc412d2) computes them:
/// the target is <c>prompt.split('"')[1]</c> (the text after the first double quote, up to the next one or the end);
/// target and recognised text are lower-cased with every space (U+0020) removed; the distance is 0 when the target
/// occurs in the recognised text, else their Levenshtein distance, capped at the target's length; the score is
/// <c>1 - distance / len(target)</c>, in [0, 1].
/// </summary>
internal static class OcrTarget
{
    /// <summary>The normalised target of <paramref name="prompt"/>; null (and why) when it has no quoted text.</summary>
    public static string? TryFrom(string prompt, out string problem)
    {
        int open = prompt.IndexOf('"');
        if (open < 0)
        {
            problem = "no text in double quotes (the OCR reward scores the text between the first two '\"')";
            return null;
        }
        var rest = prompt[(open + 1)..];
        int close = rest.IndexOf('"');
        var target = Normalise(close < 0 ? rest : rest[..close]);
        if (target.Length == 0)
        {
            problem = "the quoted text is empty once spaces are removed";
            return null;
        }
        problem = "";
        return target;
    }

    /// <summary>The normalised target of <paramref name="prompt"/>; a <see cref="ConfigException"/> naming the prompt when there is none.</summary>
    public static string From(string prompt) =>
        TryFrom(prompt, out var problem) ?? throw new ConfigException($"{RewardNames.Ocr}: prompt '{prompt}': {problem}");

    /// <summary>Lower-cased, spaces removed (Python's <c>s.replace(' ', '').lower()</c>).</summary>
    public static string Normalise(string text) => text.Replace(" ", "", StringComparison.Ordinal).ToLowerInvariant();

    /// <summary>The capped edit distance of <paramref name="recognised"/> (raw OCR text) from a normalised <paramref name="target"/>.</summary>
    public static int Distance(string recognised, string target)
    {
        var text = Normalise(recognised);
        if (text.Contains(target, StringComparison.Ordinal)) return 0;
        return Math.Min(Levenshtein.Distance(text, target), Levenshtein.Length(target));
    }

    /// <summary><c>1 - distance / len(target)</c> for raw OCR text <paramref name="recognised"/>.</summary>
    public static double Score(string recognised, string target) =>
        1.0 - (double)Distance(recognised, target) / Levenshtein.Length(target);
}
