using Ddpo.Evaluation;
using Ddpo.Prompts;
using Ddpo.Training;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Evaluation;

public sealed class StandardErrorTests
{
    [Fact]
    public void MetricsAndEvalUseTheSampleStandardDeviation()
    {
        // [1, 2, 3, 4]: sample variance 5/3 (n - 1), so s.e.m. = sqrt(5/3) / 2 = 0.645497...; numpy's std() = sqrt(1.25).
        double sem = Math.Sqrt(5.0 / 3.0) / 2;
        Assert.Equal(sem, StandardError.OfMean([1.0, 2.0, 3.0, 4.0]), 12);
        Assert.True(double.IsNaN(StandardError.OfMean([3.0])));
        Assert.True(double.IsNaN(StandardError.OfMean([])));

        var summary = RewardSummary.Of([1f, float.NaN, 2f, 3f, float.PositiveInfinity, 4f]);
        Assert.Equal(4, summary.Count);
        Assert.Equal(2.5, summary.Mean, 12);
        Assert.Equal(sem, summary.Sem, 12);

        using var scope = NewDisposeScope();
        using var samples = new EpochSamples
        {
            Prompts = ["a", "b", "a", "b"],
            Metadata = Enumerable.Repeat(PromptSample.NoMetadata, 4).ToArray(),
            PromptEmbeds = zeros(4, 1, 1),
            Timesteps = zeros(new long[] { 4, 1 }, dtype: ScalarType.Int64),
            Latents = zeros(4, 1, 1),
            NextLatents = zeros(4, 1, 1),
            LogProbs = zeros(4, 1),
            Rewards = [1f, 2f, 3f, 4f],
        };
        var line = EpochMetrics.Build(0, samples, 4, 0, new UpdateStats(0, 0, 0, 0, 1, 1, 0, 4), 0, 0, 0, 1e-4);
        Assert.Equal(sem, (double)line["reward_sem"]!, 12);
        Assert.Equal(Math.Sqrt(1.25), (double)line["reward_std"]!, 12); // ddpo-pytorch logs numpy's std() (n)
    }
}
