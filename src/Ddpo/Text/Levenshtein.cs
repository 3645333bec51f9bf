using System.Text;

namespace Ddpo.Text;

/// <summary>
/// The Levenshtein edit distance (insertions, deletions and substitutions, each costing 1) over Unicode code points,
/// as python-Levenshtein's <c>distance</c> counts characters of a Python <c>str</c> (a surrogate pair is one character).
/// </summary>
internal static class Levenshtein
{
    /// <summary>The edit distance between <paramref name="a"/> and <paramref name="b"/>.</summary>
    public static int Distance(string a, string b)
    {
        var x = CodePoints(a);
        var y = CodePoints(b);
        if (x.Length == 0) return y.Length;
        if (y.Length == 0) return x.Length;
        // Two rows of the dynamic programme: O(|a|·|b|) time, O(|b|) memory.
        var previous = new int[y.Length + 1];
        var current = new int[y.Length + 1];
        for (int j = 0; j <= y.Length; j++) previous[j] = j;
        for (int i = 1; i <= x.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= y.Length; j++)
            {
                int substitution = previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }
            (previous, current) = (current, previous);
        }
        return previous[y.Length];
    }

    /// <summary>The number of code points of <paramref name="s"/> (Python's <c>len</c>).</summary>
    public static int Length(string s) => CodePoints(s).Length;

    private static int[] CodePoints(string s)
    {
        var points = new List<int>(s.Length);
        foreach (var rune in s.EnumerateRunes()) points.Add(rune.Value);
        return points.ToArray();
    }
}
