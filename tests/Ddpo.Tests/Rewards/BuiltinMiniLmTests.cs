using Ddpo.Text;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>Loads the built-in all-MiniLM-L6-v2 once for the tests that need a real encoder.</summary>
public sealed class MiniLmFixture : IDisposable
{
    /// <summary>The scorer (last layer, no idf, no rescaling).</summary>
    internal BertScorer Scorer { get; } = BertScorer.CreateDefault();

    /// <inheritdoc/>
    public void Dispose() => Scorer.Dispose();
}

/// <summary>The offline default encoder: weights read from the packaged ONNX graph, run in TorchSharp.</summary>
public sealed class BuiltinMiniLmTests : IClassFixture<MiniLmFixture>
{
    private readonly MiniLmFixture _fixture;

    public BuiltinMiniLmTests(MiniLmFixture fixture) => _fixture = fixture;

    [Fact]
    public void ParaphrasesScoreAboveUnrelatedSentences()
    {
        var s = _fixture.Scorer;
        var refs = new[] { "The image contains a dog riding a bike", "The image contains a cat playing chess", "The image contains a horse washing dishes" };
        var paraphrases = new[] { "A puppy is riding a bicycle.", "A kitten plays a game of chess.", "A pony is cleaning plates in a sink." };
        var unrelated = new[] { "The stock market fell sharply today.", "Rain is expected over the weekend.", "He paid the invoice by bank transfer." };
        var good = s.Score(paraphrases, refs);
        var bad = s.Score(unrelated, refs);
        for (int i = 0; i < refs.Length; i++)
        {
            Assert.True(good.Recall[i] > bad.Recall[i] + 0.05, $"pair {i}: paraphrase recall {good.Recall[i]} vs unrelated {bad.Recall[i]}");
            Assert.True(good.F1[i] > bad.F1[i], $"pair {i}: paraphrase F1 {good.F1[i]} vs unrelated {bad.F1[i]}");
        }
        // A different animal doing the same thing scores between the two.
        var wrongAnimal = s.Score(["A cat is riding a bicycle."], [refs[0]]);
        Assert.InRange(wrongAnimal.Recall[0], bad.Recall[0], good.Recall[0]);
    }

    [Fact]
    public void SentenceEmbeddingsMatchOnnxRuntime()
    {
        // The package's own pipeline (ONNX Runtime, mean pooling, L2 normalisation) gave, on this machine, cosine
        // 0.7858 for the first pair and 0.0499 for the second: the weights read from the graph must reproduce them.
        static Tensor Sentence(BertScorer s, string text)
        {
            var e = s.Embed([s.Tokenize(text)])[0];
            var mean = e.mean([0]);
            return mean / mean.norm();
        }
        using var scope = NewDisposeScope();
        var s = _fixture.Scorer;
        var a = Sentence(s, "a dog riding a bike");
        var b = Sentence(s, "a puppy on a bicycle");
        var c = Sentence(s, "the stock market fell");
        Assert.Equal(0.7858, a.dot(b).item<float>(), 3);
        Assert.Equal(0.0499, a.dot(c).item<float>(), 3);
        Assert.Equal([101, 1037, 3899, 5559, 1037, 7997, 102], s.Tokenize("A dog riding a bike"));
    }
}
