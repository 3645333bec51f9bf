using Ddpo.Pipelines;
using Ddpo.Evaluation;
using Ddpo.Prompts;
using Ddpo.Runs;
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
            Condition = StableDiffusionPolicy.Condition(zeros(4, 1, 1)),
            Times = zeros(new long[] { 4, 1 }, dtype: ScalarType.Int64),
            Latents = zeros(4, 1, 1),
            NextLatents = zeros(4, 1, 1),
            LogProbs = zeros(4, 1),
            Rewards = [1f, 2f, 3f, 4f],
        };
        var line = EpochMetricsBuilder.Build(0, samples, 4, 0, new UpdateStats(0, 0, 0, 0, 1, 1, 0, 4), 0, 0, 0, 1e-4);
        Assert.Equal(sem, (double)line["reward_sem"]!, 12);
        Assert.Equal(Math.Sqrt(1.25), (double)line["reward_std"]!, 12); // ddpo-pytorch logs numpy's std() (n)
    }

    [Fact]
    public void EvalChangeIsPairedOverTheSameImages()
    {
        // Two prompts far apart (1 vs 5) and a fine-tuned model that adds 0.1 +- 0.01 to every image: the unpaired
        // errors are dominated by the prompts, the paired one is the differences' own (0.11, 0.09, 0.10, 0.10).
        float[] baseRewards = [1f, 5f, 1.2f, 5.2f, float.NaN];
        float[] tuned = [1.11f, 5.09f, 1.3f, 5.3f, float.NaN];
        var row = EvaluationRow.Of("held-out", "jpeg", baseRewards, tuned);
        double[] differences = [1.11 - 1.0, 5.09 - 5.0, 1.3 - 1.2, 5.3 - 5.2];
        Assert.Equal(StandardError.OfMean(differences), row.ChangeSem, 5);
        Assert.Equal(0.1, row.Change, 5);
        double unpaired = Math.Sqrt(row.Base.Sem * row.Base.Sem + row.FineTuned.Sem * row.FineTuned.Sem);
        Assert.True(row.ChangeSem < unpaired / 100, $"paired {row.ChangeSem} vs unpaired {unpaired}");
        Assert.Equal(row.Change / row.ChangeSem, row.ChangeInSems, 9);
        // An image scored by one model only is left out of the pairs.
        var oneSided = EvaluationRow.Of("held-out", "jpeg", [1f, 5f, 1.2f, 5.2f, 3f], [1.11f, 5.09f, 1.3f, 5.3f, float.NaN]);
        Assert.Equal(row.ChangeSem, oneSided.ChangeSem, 9);
        Assert.Throws<ArgumentException>(() => EvaluationRow.Of("x", "y", [1f], [1f, 2f]));
    }
}
