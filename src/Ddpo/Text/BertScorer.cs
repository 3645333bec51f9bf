using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Text;

/// <summary>
/// BERTScore in process (bert-score's <c>BERTScorer.score</c> for single references): token embeddings of a
/// BERT-family encoder from a chosen layer, greedy cosine matching, optional idf weighting (over the
/// references of each call) and baseline rescaling. Thread-safe (calls are serialised).
/// </summary>
internal sealed class BertScorer : IDisposable
{
    private readonly BertModel _model;
    private readonly BertWordPieceTokenizer _tokenizer;
    private readonly int _numLayers;
    private readonly object _lock = new();

    /// <summary>Scores with <paramref name="model"/> (disposed with the scorer) and <paramref name="tokenizer"/>.</summary>
    public BertScorer(BertModel model, BertWordPieceTokenizer tokenizer, BertScoreOptions? options = null, string? encoderName = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        Options = options ?? new BertScoreOptions();
        _numLayers = Options.NumLayers ?? model.Config.NumHiddenLayers;
        if (_numLayers < 0 || _numLayers > model.Config.NumHiddenLayers)
        {
            throw new ArgumentOutOfRangeException(nameof(options), Options.NumLayers,
                $"BERTScore num_layers must be in 0..{model.Config.NumHiddenLayers} for {encoderName ?? "this encoder"}");
        }
        if (Options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.BatchSize, "batch size must be >= 1");
        EncoderName = encoderName ?? "BERT";
    }

    /// <summary>The options in use.</summary>
    public BertScoreOptions Options { get; }

    /// <summary>The encoder's name (a folder or the built-in model), for logs.</summary>
    public string EncoderName { get; }

    /// <summary>The encoder layer whose output is used.</summary>
    public int NumLayers => _numLayers;

    /// <summary>Loads a transformers BERT folder (<c>config.json</c>, <c>model.safetensors</c>, <c>vocab.txt</c>).</summary>
    public static BertScorer FromPretrained(string directory, BertScoreOptions? options = null, Device? device = null)
    {
        var model = BertModel.FromPretrained(directory, device);
        try
        {
            var tokenizer = BertWordPieceTokenizer.FromFolder(directory, model.Config.MaxPositionEmbeddings);
            return new BertScorer(model, tokenizer, options, directory);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The offline default: the built-in all-MiniLM-L6-v2 (<see cref="BuiltinMiniLm"/>).</summary>
    public static BertScorer CreateDefault(BertScoreOptions? options = null, Device? device = null)
    {
        var (model, tokenizer) = BuiltinMiniLm.Load(device);
        try
        {
            return new BertScorer(model, tokenizer, options, BuiltinMiniLm.Name);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The token ids a sentence is scored with (<c>[CLS] … [SEP]</c>).</summary>
    public int[] Tokenize(string text) => _tokenizer.Encode(text);

    /// <summary>Token embeddings [T, D] (float32, CPU) of each text, special tokens included.</summary>
    public IReadOnlyList<Tensor> Embed(IReadOnlyList<int[]> tokenIds)
    {
        var result = new Tensor[tokenIds.Count];
        for (int start = 0; start < tokenIds.Count; start += Options.BatchSize)
        {
            int n = Math.Min(Options.BatchSize, tokenIds.Count - start);
            int t = Enumerable.Range(start, n).Max(i => tokenIds[i].Length);
            var ids = new long[n * t];
            var mask = new long[n * t];
            Array.Fill(ids, _tokenizer.PadId);
            for (int i = 0; i < n; i++)
            {
                var s = tokenIds[start + i];
                for (int j = 0; j < s.Length; j++)
                {
                    ids[i * t + j] = s[j];
                    mask[i * t + j] = 1;
                }
            }
            using var scope = NewDisposeScope();
            var hidden = _model.Encode(tensor(ids, [n, t]), tensor(mask, [n, t]), _numLayers).to(ScalarType.Float32).cpu();
            for (int i = 0; i < n; i++)
            {
                result[start + i] = hidden[i].narrow(0, 0, tokenIds[start + i].Length).clone().MoveToOuterDisposeScope();
            }
        }
        return result;
    }

    /// <summary>
    /// BERTScore of each candidate against the reference at the same index: precision (how much of the candidate
    /// the reference covers), recall (how much of the reference the candidate covers) and F1.
    /// </summary>
    public BertScoreResult Score(IReadOnlyList<string> candidates, IReadOnlyList<string> references)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(references);
        if (candidates.Count != references.Count)
        {
            throw new ArgumentException($"{candidates.Count} candidates but {references.Count} references");
        }
        lock (_lock)
        {
            var distinct = candidates.Concat(references).Distinct(StringComparer.Ordinal).ToArray();
            var ids = distinct.Select(Tokenize).ToArray();
            var index = distinct.Select((s, i) => (s, i)).ToDictionary(x => x.s, x => x.i, StringComparer.Ordinal);
            var embeddings = Embed(ids);
            try
            {
                var weight = Options.Idf
                    ? BertScoreMath.IdfWeights(references.Select(r => ids[index[r]]).ToArray())
                    : BertScoreMath.UniformWeights(_tokenizer.ClsId, _tokenizer.SepId);
                int count = candidates.Count;
                var p = new float[count];
                var r = new float[count];
                var f = new float[count];
                for (int i = 0; i < count; i++)
                {
                    int c = index[candidates[i]], rf = index[references[i]];
                    var (pi, ri, fi) = BertScoreMath.GreedyMatch(embeddings[c], embeddings[rf],
                        ids[c].Select(weight).ToArray(), ids[rf].Select(weight).ToArray());
                    if (Options.Baseline is { } b)
                    {
                        pi = BertScoreBaseline.Rescale(pi, b.Precision);
                        ri = BertScoreBaseline.Rescale(ri, b.Recall);
                        fi = BertScoreBaseline.Rescale(fi, b.F1);
                    }
                    (p[i], r[i], f[i]) = ((float)pi, (float)ri, (float)fi);
                }
                return new BertScoreResult(p, r, f);
            }
            finally
            {
                foreach (var e in embeddings) e.Dispose();
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _model.Dispose();
}
