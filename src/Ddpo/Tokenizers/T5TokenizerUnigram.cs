using System.Text;

namespace Ddpo.Tokenizers;

/// <summary>
/// sentencepiece's unigram segmentation (<c>Model::EncodeOptimized</c>): Viterbi over the normalised text's characters,
/// each matching normal or user-defined piece scoring its log-probability (user-defined: length·max − 0.1), a character
/// no piece starts with scoring min − 10 as <c>&lt;unk&gt;</c>; earlier paths win ties. Runs of unknown characters
/// become one <c>&lt;unk&gt;</c>, as sentencepiece merges them.
/// </summary>
internal sealed class T5TokenizerUnigram
{
    private const float UnkPenalty = 10f;
    private readonly Dictionary<string, int> _pieces = new(StringComparer.Ordinal);
    private readonly float[] _scores;
    private readonly bool[] _userDefined;
    private readonly int _maxPieceChars;
    private readonly float _unkScore, _maxScore;
    private readonly int _unkId;

    public T5TokenizerUnigram(T5TokenizerModelFile model)
    {
        _unkId = model.UnkId;
        _scores = new float[model.Pieces.Count];
        _userDefined = new bool[model.Pieces.Count];
        float min = float.MaxValue, max = float.MinValue;
        for (int id = 0; id < model.Pieces.Count; id++)
        {
            var p = model.Pieces[id];
            _scores[id] = p.Score;
            if (p.Type == T5TokenizerPiece.Normal)
            {
                min = Math.Min(min, p.Score);
                max = Math.Max(max, p.Score);
            }
            // Control, unknown and byte pieces are never matched in the text; unused ones are skipped.
            if (p.Type is T5TokenizerPiece.Normal or T5TokenizerPiece.UserDefined && p.Text.Length > 0)
            {
                _pieces.TryAdd(p.Text, id);
                _userDefined[id] = p.Type == T5TokenizerPiece.UserDefined;
                _maxPieceChars = Math.Max(_maxPieceChars, p.Text.EnumerateRunes().Count());
            }
        }
        _unkScore = (min == float.MaxValue ? 0 : min) - UnkPenalty;
        _maxScore = max == float.MinValue ? 0 : max;
    }

    /// <summary>The piece id of <paramref name="piece"/> (the unknown id when it is not a matchable piece).</summary>
    public int PieceToId(string piece) => _pieces.TryGetValue(piece, out var id) ? id : _unkId;

    /// <summary>The ids of the best segmentation of already normalised text.</summary>
    public List<int> Encode(string normalized)
    {
        // Characters as Unicode scalars (a piece never splits a surrogate pair).
        var chars = new List<string>();
        foreach (var rune in normalized.EnumerateRunes()) chars.Add(rune.ToString());
        int n = chars.Count;
        var score = new float[n + 1];
        var start = new int[n + 1];
        var id = new int[n + 1];
        Array.Fill(start, -1);
        start[0] = 0;
        var sb = new StringBuilder();
        for (int s = 0; s < n; s++)
        {
            if (start[s] < 0) continue;
            bool single = false;
            sb.Clear();
            for (int e = s; e < n && e - s < _maxPieceChars; e++)
            {
                sb.Append(chars[e]);
                if (!_pieces.TryGetValue(sb.ToString(), out var piece)) continue;
                int length = Encoding.UTF8.GetByteCount(sb.ToString());
                float candidate = (_userDefined[piece] ? length * _maxScore - 0.1f : _scores[piece]) + score[s];
                if (start[e + 1] < 0 || candidate > score[e + 1])
                {
                    score[e + 1] = candidate;
                    start[e + 1] = s;
                    id[e + 1] = piece;
                }
                if (e == s) single = true;
            }
            if (!single)
            {
                float candidate = _unkScore + score[s];
                if (start[s + 1] < 0 || candidate > score[s + 1])
                {
                    score[s + 1] = candidate;
                    start[s + 1] = s;
                    id[s + 1] = _unkId;
                }
            }
        }
        var result = new List<int>();
        for (int end = n; end > 0; end = start[end]) result.Add(id[end]);
        result.Reverse();
        var merged = new List<int>(result.Count);
        foreach (var t in result)
        {
            if (t == _unkId && merged.Count > 0 && merged[^1] == _unkId) continue;
            merged.Add(t);
        }
        return merged;
    }
}
