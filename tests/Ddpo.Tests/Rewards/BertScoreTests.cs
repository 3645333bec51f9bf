using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Tests.Support;
using Ddpo.Text;
using Ddpo.Tokenizers;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>BERTScore: hand-computed matching, idf and rescaling, and a tiny random encoder checked against a direct computation.</summary>
public sealed class BertScoreTests
{
    private static readonly string[] Words =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "image", "contains", "a", "cat", "dog", "riding", "bike", "on", "sofa", "##s", "red"];

    [Fact]
    public void GreedyMatchMatchesHandComputation()
    {
        // Candidate tokens (1,0), (0,1), (1,1) with weights 0, 1, 1; reference tokens (1,0), (1,-1), (0,-1) with weights 1, 1, 0.
        // Cosines: rows = candidate, columns = reference:
        //   [1, 1/√2, 0], [0, -1/√2, -1], [1/√2, 0, -1/√2].
        // Precision: best per candidate token [1, 0, 1/√2], weights [0, ½, ½] -> 1/(2√2).
        // Recall: best per reference token [1, 1/√2, 0], weights [½, ½, 0] -> (1 + 1/√2) / 2.
        // F1 = 2PR / (P + R) = 1/2 exactly.
        using var c = tensor(new float[] { 1, 0, 0, 1, 1, 1 }, [3, 2]);
        using var r = tensor(new float[] { 1, 0, 1, -1, 0, -1 }, [3, 2]);
        var (p, rec, f) = BertScoreMath.GreedyMatch(c, r, [0, 1, 1], [1, 1, 0]);
        Assert.Equal(1 / (2 * Math.Sqrt(2)), p, 12);
        Assert.Equal((1 + 1 / Math.Sqrt(2)) / 2, rec, 12);
        Assert.Equal(0.5, f, 12);
    }

    [Fact]
    public void EmptySentencesScoreZero()
    {
        using var c = tensor(new float[] { 1, 0, 0, 1 }, [2, 2]); // only [CLS] [SEP]
        using var r = tensor(new float[] { 1, 0, 1, 1, 0, 1 }, [3, 2]);
        var (p, rec, f) = BertScoreMath.GreedyMatch(c, r, [0, 0], [0, 1, 0]);
        Assert.Equal((0.0, 0.0, 0.0), (p, rec, f));
    }

    [Fact]
    public void IdfFollowsBertScore()
    {
        // Two references: [CLS] 5 6 [SEP] and [CLS] 5 7 [SEP] (M = 2).
        var idf = BertScoreMath.IdfWeights([[2, 5, 6, 3], [2, 5, 7, 3]]);
        Assert.Equal(0.0, idf(2), 12);               // in both: ln(3/3)
        Assert.Equal(0.0, idf(5), 12);
        Assert.Equal(Math.Log(1.5), idf(6), 12);     // in one: ln(3/2)
        Assert.Equal(Math.Log(3.0), idf(9), 12);     // unseen: ln(3/1)
        var uniform = BertScoreMath.UniformWeights(2, 3);
        Assert.Equal((0.0, 0.0, 1.0), (uniform(2), uniform(3), uniform(9)));
    }

    [Fact]
    public void BaselineFileIsReadByLayerAndRescales()
    {
        var dir = TestPaths.NewTempDir("bertscore-baseline");
        try
        {
            var path = Path.Combine(dir, "model.tsv");
            File.WriteAllText(path, "LAYER,P,R,F\n0,0.1,0.2,0.3\n1,0.8,0.85,0.82\n2,0.9,0.5,0.25\n");
            var b = BertScoreBaseline.Load(path, 1);
            Assert.Equal(new BertScoreBaseline(0.8, 0.85, 0.82), b);
            Assert.Equal((0.9 - 0.8) / (1 - 0.8), BertScoreBaseline.Rescale(0.9, b.Precision), 12);
            var e = Assert.Throws<ConfigException>(() => BertScoreBaseline.Load(path, 3));
            Assert.Contains("num_layers = 3", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string TinyEncoderFolder(int seed = 3)
    {
        var dir = TestPaths.NewTempDir("bert-tiny");
        var config = new BertConfig { VocabSize = Words.Length, HiddenSize = 16, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 24, MaxPositionEmbeddings = 32 };
        using var model = new BertModel(config, new Generator((ulong)seed));
        model.SavePretrained(dir);
        File.WriteAllLines(Path.Combine(dir, "vocab.txt"), Words);
        return dir;
    }

    /// <summary>Reference BERTScore computed here from per-sentence encodings (batch of one, no padding) with plain loops.</summary>
    private static (double P, double R, double F) Direct(BertModel model, BertWordPieceTokenizer tok, string cand, string refText, int layers, Func<int, double> weight)
    {
        double[][] Embed(int[] ids)
        {
            using var scope = NewDisposeScope();
            var h = model.Encode(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]), ones(1, ids.Length, ScalarType.Int64), layers)[0];
            return Enumerable.Range(0, ids.Length).Select(t => h[t].data<float>().Select(v => (double)v).ToArray()).ToArray();
        }
        static double Cos(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum() / Math.Sqrt(a.Sum(x => x * x) * b.Sum(x => x * x));
        var ci = tok.Encode(cand);
        var ri = tok.Encode(refText);
        var ce = Embed(ci);
        var re = Embed(ri);
        var cw = ci.Select(weight).ToArray();
        var rw = ri.Select(weight).ToArray();
        double p = Enumerable.Range(0, ci.Length).Sum(i => cw[i] * re.Max(r => Cos(ce[i], r))) / cw.Sum();
        double r = Enumerable.Range(0, ri.Length).Sum(j => rw[j] * ce.Max(c => Cos(c, re[j]))) / rw.Sum();
        return (p, r, 2 * p * r / (p + r));
    }

    [Fact]
    public void TinyEncoderScoresMatchDirectComputation()
    {
        var dir = TinyEncoderFolder();
        try
        {
            var cands = new[] { "a cat riding a bike", "the dogs", "a red sofa on a bike" };
            var refs = new[] { "the image contains a cat riding a bike", "the image contains a dog", "the image contains a red cat" };
            using var model = BertModel.FromPretrained(dir);
            var tok = BertWordPieceTokenizer.FromFolder(dir, 32);
            Assert.Equal([2, 5, 10, 15, 3], tok.Encode("  The DOGS ")); // lower-cased, WordPiece split, [CLS] ... [SEP]

            foreach (var (layers, idf) in new[] { (2, false), (1, true), (0, false) })
            {
                using var scorer = BertScorer.FromPretrained(dir, new BertScoreOptions { NumLayers = layers, Idf = idf, BatchSize = 2 });
                var result = scorer.Score(cands, refs);
                var weight = idf ? BertScoreMath.IdfWeights(refs.Select(tok.Encode).ToArray()) : BertScoreMath.UniformWeights(2, 3);
                for (int i = 0; i < cands.Length; i++)
                {
                    var (p, r, f) = Direct(model, tok, cands[i], refs[i], layers, weight);
                    Assert.Equal(p, result.Precision[i], 4);
                    Assert.Equal(r, result.Recall[i], 4);
                    Assert.Equal(f, result.F1[i], 4);
                }
            }

            using var same = BertScorer.FromPretrained(dir);
            var identical = same.Score(["a cat on a sofa"], ["a cat on a sofa"]);
            Assert.Equal(1f, identical.Recall[0], 5);
            Assert.Equal(1f, identical.F1[0], 5);
            var empty = same.Score([""], ["a cat"]);
            Assert.Equal((0f, 0f, 0f), (empty.Precision[0], empty.Recall[0], empty.F1[0]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void LoadingIgnoresPoolerAndPrefixButReportsWrongKeys()
    {
        var dir = TinyEncoderFolder();
        try
        {
            var weights = SafetensorsFile.Load(Path.Combine(dir, "model.safetensors"));
            var prefixed = weights.ToDictionary(kv => "bert." + kv.Key, kv => kv.Value);
            prefixed["bert.pooler.dense.weight"] = zeros(16, 16);
            prefixed["cls.predictions.bias"] = zeros(Words.Length);
            prefixed["bert.embeddings.position_ids"] = arange(32).unsqueeze(0);
            using (var m = BertModel.FromStateDict(BertModel.FromPretrained(dir).Config, prefixed, "prefixed"))
            {
                using var reference = BertModel.FromPretrained(dir);
                using var ids = tensor(new long[] { 2, 9, 3 }, [1, 3]);
                using var mask = ones(1, 3, ScalarType.Int64);
                TensorAssert.Close(reference.Encode(ids, mask, 2), m.Encode(ids, mask, 2), atol: 0, rtol: 0);
            }
            weights.Remove("encoder.layer.1.output.dense.bias", out var removed);
            removed!.Dispose();
            weights["encoder.layer.9.extra"] = zeros(1);
            var e = Assert.Throws<ModelLoadException>(() => BertModel.FromStateDict(BertModel.FromPretrained(dir).Config, weights, "broken.safetensors"));
            Assert.Contains("broken.safetensors", e.Message);
            Assert.Contains("encoder.layer.1.output.dense.bias", e.Message);
            Assert.Contains("encoder.layer.9.extra", e.Message);
            File.WriteAllText(Path.Combine(dir, "config.json"), "{\"model_type\": \"roberta\"}");
            var ce = Assert.Throws<ConfigException>(() => BertModel.FromPretrained(dir));
            Assert.Contains("model_type", ce.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void PaddingDoesNotChangeEncodings()
    {
        var dir = TinyEncoderFolder();
        try
        {
            using var model = BertModel.FromPretrained(dir);
            using var scope = NewDisposeScope();
            var ids = tensor(new long[] { 2, 9, 11, 3, 0, 0, 2, 10, 3, 0, 0, 0 }, [2, 6]);
            var mask = tensor(new long[] { 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0 }, [2, 6]);
            var batched = model.Encode(ids, mask, 2);
            var alone = model.Encode(tensor(new long[] { 2, 10, 3 }, [1, 3]), ones(1, 3, ScalarType.Int64), 2);
            TensorAssert.Close(alone[0], batched[1].narrow(0, 0, 3), atol: 1e-5, what: "padded sentence");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
