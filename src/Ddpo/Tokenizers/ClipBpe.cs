namespace Ddpo.Tokenizers;

/// <summary>
/// CLIP's byte-pair encoding of one pre-token: the last character carries the <c>&lt;/w&gt;</c>
/// end-of-word marker, then the lowest-ranked adjacent pair is merged (all its occurrences, left to
/// right) until no listed pair remains — exactly <c>SimpleTokenizer.bpe</c> of openai/CLIP.
/// </summary>
internal sealed class ClipBpe
{
    /// <summary>The end-of-word marker appended to a word's last symbol.</summary>
    public const string EndOfWord = "</w>";

    private readonly Dictionary<(string, string), int> _ranks;

    /// <summary>Creates the encoder from merges in priority order (first = merged first).</summary>
    public ClipBpe(IEnumerable<(string First, string Second)> merges)
    {
        _ranks = new Dictionary<(string, string), int>();
        foreach (var m in merges)
        {
            _ranks.TryAdd(m, _ranks.Count);
        }
    }

    /// <summary>Adds a merge with the lowest priority (used when building small vocabularies).</summary>
    public void AddMerge(string first, string second) => _ranks.TryAdd((first, second), _ranks.Count);

    /// <summary>Splits a byte-encoded pre-token into BPE symbols.</summary>
    public List<string> Apply(string token)
    {
        if (token.Length == 0) return [];
        var word = new List<string>(token.Length);
        for (int i = 0; i < token.Length - 1; i++) word.Add(token[i].ToString());
        word.Add(token[^1] + EndOfWord);
        while (word.Count > 1)
        {
            int best = int.MaxValue, at = -1;
            for (int i = 0; i < word.Count - 1; i++)
            {
                if (_ranks.TryGetValue((word[i], word[i + 1]), out int rank) && rank < best)
                {
                    best = rank;
                    at = i;
                }
            }
            if (at < 0) break;
            word = MergeAll(word, word[at], word[at + 1]);
        }
        return word;
    }

    private static List<string> MergeAll(List<string> word, string first, string second)
    {
        var merged = new List<string>(word.Count);
        int i = 0;
        while (i < word.Count)
        {
            if (i < word.Count - 1 && word[i] == first && word[i + 1] == second)
            {
                merged.Add(first + second);
                i += 2;
            }
            else
            {
                merged.Add(word[i]);
                i++;
            }
        }
        return merged;
    }
}
