using static TorchSharp.torch;

namespace Ddpo.Text;

/// <summary>
/// The arithmetic of BERTScore as bert-score's <c>greedy_cos_idf</c> and <c>get_idf_dict</c> define it,
/// on one candidate-reference pair of token embeddings (special tokens included, as bert-score keeps them).
/// </summary>
internal static class BertScoreMath
{
    /// <summary>
    /// Greedy cosine matching: each candidate token's best cosine similarity with any reference token, weighted
    /// by <paramref name="candidateWeights"/> normalised to sum 1, is the precision; each reference token's best
    /// match among the candidate tokens, weighted likewise, the recall; F1 = 2PR / (P + R), 0 where undefined.
    /// A sentence of two tokens (only <c>[CLS]</c> and <c>[SEP]</c>: empty text) gives P = R = 0, as bert-score.
    /// </summary>
    /// <param name="candidate">Candidate token embeddings [Tc, D].</param>
    /// <param name="reference">Reference token embeddings [Tr, D].</param>
    /// <param name="candidateWeights">Per-token weights of the candidate (idf; 0 for special tokens), length Tc.</param>
    /// <param name="referenceWeights">Per-token weights of the reference, length Tr.</param>
    public static (double Precision, double Recall, double F1) GreedyMatch(Tensor candidate, Tensor reference,
        IReadOnlyList<double> candidateWeights, IReadOnlyList<double> referenceWeights)
    {
        if (candidate.dim() != 2 || reference.dim() != 2 || candidate.shape[1] != reference.shape[1])
        {
            throw new ArgumentException($"embeddings must be [Tc, D] and [Tr, D], got [{string.Join(", ", candidate.shape)}] and [{string.Join(", ", reference.shape)}]");
        }
        if (candidateWeights.Count != candidate.shape[0] || referenceWeights.Count != reference.shape[0])
        {
            throw new ArgumentException("one weight per token is needed");
        }
        double p, r;
        using (var scope = NewDisposeScope())
        {
            var c = candidate.to(ScalarType.Float64);
            var rf = reference.to(ScalarType.Float64);
            c = c / c.norm(1, keepdim: true);
            rf = rf / rf.norm(1, keepdim: true);
            var sim = c.matmul(rf.t());
            var wordPrecision = sim.max(1).values;
            var wordRecall = sim.max(0).values;
            var cw = tensor(candidateWeights.ToArray(), ScalarType.Float64);
            var rw = tensor(referenceWeights.ToArray(), ScalarType.Float64);
            p = (wordPrecision * (cw / cw.sum())).sum().item<double>();
            r = (wordRecall * (rw / rw.sum())).sum().item<double>();
        }
        if (candidate.shape[0] == 2 || reference.shape[0] == 2)
        {
            p = 0;
            r = 0;
        }
        double f = 2 * p * r / (p + r);
        if (double.IsNaN(f)) f = 0;
        return (p, r, f);
    }

    /// <summary>
    /// Inverse document frequencies over <paramref name="references"/> (token id sequences): a token in
    /// <c>c</c> of the <c>M</c> references weighs <c>ln((M + 1) / (c + 1))</c>, an unseen token <c>ln(M + 1)</c>
    /// (bert-score's <c>get_idf_dict</c>; special tokens, present everywhere, weigh 0).
    /// </summary>
    public static Func<int, double> IdfWeights(IReadOnlyList<int[]> references)
    {
        var counts = new Dictionary<int, int>();
        foreach (var ids in references)
        {
            foreach (var id in ids.Distinct()) counts[id] = counts.GetValueOrDefault(id) + 1;
        }
        int m = references.Count;
        return id => Math.Log((m + 1.0) / (counts.GetValueOrDefault(id) + 1.0));
    }

    /// <summary>Weights without idf: 1 for every token but <c>[CLS]</c> and <c>[SEP]</c>, which weigh 0 (bert-score's default).</summary>
    public static Func<int, double> UniformWeights(int clsId, int sepId) => id => id == clsId || id == sepId ? 0.0 : 1.0;
}
