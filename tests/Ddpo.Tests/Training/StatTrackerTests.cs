using Ddpo.Training;
using Xunit;

namespace Ddpo.Tests.Training;

public sealed class StatTrackerTests
{
    private const double Eps = 1e-6;

    private static double PopStd(params double[] v)
    {
        double m = v.Average();
        return Math.Sqrt(v.Select(x => (x - m) * (x - m)).Sum() / v.Length);
    }

    [Fact]
    public void BufferPersistsIsLimitedAndFallsBackToBatchStats()
    {
        var tracker = new PerPromptStatTracker(bufferSize: 3, minCount: 2);

        // Epoch 1: "a" has 2 rewards (>= min_count) -> its own stats; "b" has 1 -> the batch's.
        var adv1 = tracker.Update(["a", "b", "a"], [1f, 10f, 3f]);
        double batchMean = (1 + 10 + 3) / 3.0, batchStd = PopStd(1, 10, 3);
        Assert.Equal((1 - 2.0) / (1.0 + Eps), adv1[0], 1e-6);
        Assert.Equal((10 - batchMean) / (batchStd + Eps), adv1[1], 1e-6);
        Assert.Equal((3 - 2.0) / (1.0 + Eps), adv1[2], 1e-6);

        // Epoch 2: "a" buffer [1, 3] + [5, 7] keeps the last 3 -> [3, 5, 7]; "b" now has 2 -> [10, 4].
        var adv2 = tracker.Update(["a", "a", "b"], [5f, 7f, 4f]);
        double aStd = PopStd(3, 5, 7);
        Assert.Equal(0.0, adv2[0], 1e-6);
        Assert.Equal((7 - 5.0) / (aStd + Eps), adv2[1], 1e-6);
        Assert.Equal((4 - 7.0) / (3.0 + Eps), adv2[2], 1e-6);

        var stats = tracker.GetStats();
        Assert.Equal(3, stats["a"].Count);
        Assert.Equal(5.0, stats["a"].Mean, 1e-9);
        Assert.Equal(aStd, stats["a"].Std, 1e-9);
        Assert.Equal(2, stats["b"].Count);
        Assert.Equal(7.0, stats["b"].Mean, 1e-9);

        tracker.Clear();
        Assert.Empty(tracker.GetStats());
    }

    [Fact]
    public void UsesNewRewardsBeforeComputingStats()
    {
        // min_count 1: a new prompt's first reward is already in its buffer, so mean = r and the advantage is 0.
        var tracker = new PerPromptStatTracker(bufferSize: 4, minCount: 1);
        var adv = tracker.Update(["x", "y"], [2f, 8f]);
        Assert.Equal([0f, 0f], adv);
    }

    [Fact]
    public void StateRoundTripsThroughJson()
    {
        var tracker = new PerPromptStatTracker(bufferSize: 4, minCount: 2);
        tracker.Update(["a", "b", "a", "c \"quoted\""], [0.1f, 0.2f, 0.3f, -1.5f]);
        tracker.Update(["a", "a", "a"], [1f, 2f, 3f]);
        var restored = PerPromptStatTracker.FromJson(tracker.ToJson());
        Assert.Equal(tracker.BufferSize, restored.BufferSize);
        Assert.Equal(tracker.MinCount, restored.MinCount);
        Assert.Equal(tracker.GetStats().OrderBy(kv => kv.Key), restored.GetStats().OrderBy(kv => kv.Key));
        string[] prompts = ["a", "b", "c \"quoted\"", "d"];
        float[] rewards = [4f, 5f, 6f, 7f];
        Assert.Equal(tracker.Update(prompts, rewards), restored.Update(prompts, rewards));
        Assert.Throws<FormatException>(() => PerPromptStatTracker.FromJson("{\"buffers\": 3}"));
    }

    [Fact]
    public void RejectsNonFiniteRewards()
    {
        var tracker = new PerPromptStatTracker(4, 2);
        Assert.Throws<ArgumentException>(() => tracker.Update(["a"], [float.NaN]));
        Assert.Throws<ArgumentException>(() => tracker.Update(["a", "b"], [1f]));
    }

    [Fact]
    public void GlobalNormalizerUsesBatchMeanAndStd()
    {
        var adv = GlobalNormalizer.Normalize([1f, 2f, 3f, 4f]);
        double std = PopStd(1, 2, 3, 4);
        for (int i = 0; i < 4; i++) Assert.Equal((i + 1 - 2.5) / (std + Eps), adv[i], 1e-6);
    }
}
