using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Tests.Support;
using Ddpo.Training;
using Xunit;

namespace Ddpo.Tests.Training;

/// <summary>An epoch whose rewards have zero spread (the policy collapsed to one image) is marked <c>reward_collapsed</c>.</summary>
[Collection("training")]
public sealed class RewardCollapseTests
{
    [Fact]
    public void ZeroSpreadIsCollapseAndAnySpreadIsNot()
    {
        Assert.True(EpochMetrics.IsCollapsed([0.0, 0.0, 0.0, 0.0]));          // every image black
        Assert.True(EpochMetrics.IsCollapsed([3.125, 3.125]));                 // every JPEG the same size
        Assert.True(EpochMetrics.IsCollapsed([1e6, 1e6 * (1 + 1e-13)]));        // equal but for rounding
        Assert.False(EpochMetrics.IsCollapsed([1e6, 1e6 * (1 + 1e-9)]));
        Assert.False(EpochMetrics.IsCollapsed([0.0, 1e-300]));
        Assert.False(EpochMetrics.IsCollapsed([2.0, 2.0, 2.5]));
        Assert.False(EpochMetrics.IsCollapsed([2.0]));                          // one sample has no spread to lose
        Assert.False(EpochMetrics.IsCollapsed([]));
    }

    [Fact]
    public void AConstantRewardMarksEveryEpochCollapsedAndARealOneNone()
    {
        var dir = TestPaths.NewTempDir();
        var collapsed = TinyTraining.Train(TinyTraining.Config(), dir, reward: new DelegateReward("constant", b => Enumerable.Repeat(0.5f, b.Count).ToArray()));
        Assert.Equal(2, collapsed.Count);
        foreach (var line in collapsed)
        {
            Assert.Equal(true, line.Values["reward_collapsed"]);
            Assert.Equal(0.0, (double)line["reward_std"]!);
            var m = line;
            Assert.True(m.RewardCollapsed);
            Assert.Equal($"epoch {m.Epoch}: all 4 rewards are 0.5 (zero spread): the policy has likely collapsed and produces identical images, " +
                "so the update has no signal; lower train.learning_rate or use the KL penalty (train.kl_coef > 0)", m.CollapseWarning());
        }
        Directory.Delete(dir, true);

        dir = TestPaths.NewTempDir();
        var jpeg = TinyTraining.Train(TinyTraining.Config(), dir);
        Assert.All(jpeg, line => Assert.Equal(false, line.Values["reward_collapsed"]));
        Assert.All(jpeg, line => Assert.Null(line.CollapseWarning()));
        Directory.Delete(dir, true);

        // A line of an older version has no field: unknown, not collapsed.
        Assert.Null(MetricsLog.Parse("{\"epoch\": 0.0, \"reward_std\": 0.0}", "old").RewardCollapsed);
    }
}
