using Ddpo.Schedulers;
using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Training;
using Xunit;

namespace Ddpo.Tests.Training;

public sealed class GroupAdvantagesTests
{
    [Fact]
    public void AdvantagesAreRelativeToTheGroupNotToThePrompt()
    {
        // Groups 0 and 2 drew the same prompt; GRPO keeps them apart (per-prompt stat tracking would pool them).
        long[] groups = [0, 0, 0, 1, 1, 1, 2, 2, 2];
        float[] rewards = [1, 2, 3, 5, 5, 5, 10, 20, 60];
        var result = GroupAdvantages.Compute(groups, rewards);
        Assert.Equal(3, result.Groups);
        Assert.Equal(1, result.ZeroStdGroups);
        double std0 = Math.Sqrt(2.0 / 3.0); // rewards 1, 2, 3
        double std2 = Math.Sqrt((20.0 * 20 + 10 * 10 + 30 * 30) / 3); // rewards 10, 20, 60 around 30
        double[] expected =
        [
            -1 / (std0 + 1e-4), 0, 1 / (std0 + 1e-4),
            0, 0, 0,
            -20 / (std2 + 1e-4), -10 / (std2 + 1e-4), 30 / (std2 + 1e-4),
        ];
        for (int i = 0; i < rewards.Length; i++)
        {
            Assert.Equal(expected[i], result.Advantages[i], 5);
        }
        Assert.All(new[] { 3, 4, 5 }, i => Assert.Equal(0f, result.Advantages[i]));
    }

    [Fact]
    public void OrderOfTheSamplesDoesNotMatter()
    {
        // What gathering an epoch from several processes does: groups arrive interleaved, each sample's advantage stays.
        var rng = new Random(5);
        long[] groups = Enumerable.Range(0, 24).Select(i => (long)(i / 4)).ToArray();
        float[] rewards = groups.Select(_ => (float)rng.NextDouble()).ToArray();
        var reference = GroupAdvantages.Compute(groups, rewards).Advantages;
        int[] order = Enumerable.Range(0, 24).OrderBy(_ => rng.Next()).ToArray();
        var shuffled = GroupAdvantages.Compute(order.Select(i => groups[i]).ToArray(), order.Select(i => rewards[i]).ToArray()).Advantages;
        for (int k = 0; k < order.Length; k++)
        {
            Assert.Equal(reference[order[k]], shuffled[k]);
        }
        // Each group's advantages sum to zero.
        foreach (var g in groups.Distinct())
        {
            Assert.Equal(0.0, Enumerable.Range(0, 24).Where(i => groups[i] == g).Sum(i => (double)reference[i]), 4);
        }
    }

    [Fact]
    public void GroupsOfOneAndNonFiniteRewards()
    {
        var single = GroupAdvantages.Compute([0, 1, 1], [3f, 1f, 2f]);
        Assert.Equal(1, single.ZeroStdGroups); // a group left with one sample (the others dropped) has nothing to compare
        Assert.Equal(0f, single.Advantages[0]);
        var e = Assert.Throws<ArgumentException>(() => GroupAdvantages.Compute([0, 0], [1f, float.NaN]));
        Assert.Contains("group 0", e.Message);
        Assert.Throws<ArgumentException>(() => GroupAdvantages.Compute([0], [1f, 2f]));
        Assert.Equal([7L, 7, 8, 8, 9, 9], GroupAdvantages.ConsecutiveGroups(6, 2, firstGroup: 7));
    }

    [Fact]
    public void SlidingWindowMovesWithTheEpochAndStopsAtTheEnd()
    {
        var sample = new SampleConfig { NumSteps = 10, SdeWindow = [1, 4], SdeWindowShift = 2, SdeWindowShiftEvery = 3 };
        Assert.Equal(new StepWindow(1, 4), SdeWindow.At(sample, 0));
        Assert.Equal(new StepWindow(1, 4), SdeWindow.At(sample, 2));
        Assert.Equal(new StepWindow(3, 6), SdeWindow.At(sample, 3));
        Assert.Equal(new StepWindow(5, 8), SdeWindow.At(sample, 7));
        Assert.Equal(new StepWindow(7, 10), SdeWindow.At(sample, 9));
        Assert.Equal(new StepWindow(7, 10), SdeWindow.At(sample, 1000));
        Assert.Null(SdeWindow.At(new SampleConfig { NumSteps = 10 }, 3));
        // Only stochastic steps are trained: a diffusers last step without variance is cut off.
        Assert.Equal(new StepWindow(7, 9), SdeWindow.TrainedSteps(sample, 9, stochasticSteps: 9));
        Assert.Equal(new StepWindow(0, 9), SdeWindow.TrainedSteps(new SampleConfig { NumSteps = 10 }, 0, 9));
        var e = Assert.Throws<Ddpo.Base.ConfigException>(() =>
            SdeWindow.TrainedSteps(new SampleConfig { NumSteps = 10, SdeWindow = [9, 10] }, 0, stochasticSteps: 9));
        Assert.Contains("sample.sde_window", e.Message);
    }

    [Theory]
    [InlineData("sample.sde_window=[3, 1]", "sample.sde_window")]
    [InlineData("sample.sde_window=[0, 11]", "sample.sde_window")]
    [InlineData("sample.sde_window=[1]", "sample.sde_window")]
    [InlineData("sample.sde_window=[-1, 2]", "sample.sde_window")]
    [InlineData("sample.sde_window=\"1,2\"", "sample.sde_window")]
    [InlineData("sample.sde_window_shift=1", "sample.sde_window_shift")]
    [InlineData("train.kl_coef=-0.1", "train.kl_coef")]
    public void BadWindowAndKlSettingsNameTheKey(string set, string key)
    {
        var e = Assert.Throws<Ddpo.Base.ConfigException>(() => DdpoConfig.Load(null, null, ["sample.num_steps=10", set]));
        Assert.Contains(key, e.Message);
    }

    [Fact]
    public void GrpoNeedsGroupsAndKlNeedsTrainedTransitions()
    {
        var e = Assert.Throws<Ddpo.Base.ConfigException>(() => DdpoConfig.Load(null, null, ["algorithm=grpo"]));
        Assert.Contains("sample.group_size", e.Message);
        Assert.Contains(">= 2", e.Message);
        e = Assert.Throws<Ddpo.Base.ConfigException>(() => DdpoConfig.Load(null, null, ["algorithm=rwr", "train.kl_coef=0.1"]));
        Assert.Contains("train.kl_coef", e.Message);
        var ok = DdpoConfig.Load(null, null, ["algorithm=grpo", "sample.group_size=2", "train.kl_coef=0.04", "sample.num_steps=10",
            "sample.sde_window=[2, 5]", "sample.sde_window_shift=1"]);
        Assert.Equal(TrainingAlgorithm.Grpo, ok.Algorithm);
        Assert.Equal([2, 5], ok.Sample.SdeWindow);
        // The resolved TOML reads back the same.
        var again = DdpoConfig.Parse(ok.ToToml());
        Assert.Equal(ok.ComputeHash(), again.ComputeHash());
        Assert.Equal([2, 5], again.Sample.SdeWindow);
        Assert.Contains("sde_window = [2, 5]", ok.ToToml());
        Assert.Contains("sde_window = []", new DdpoConfig().ToToml());
    }

    [Fact]
    public void AdvantageAggregationNormalisesEachComponentThenWeighs()
    {
        long[] groups = [0, 0, 0, 1, 1, 1];
        float[] small = [0.1f, 0.2f, 0.4f, 0.3f, 0.3f, 0.5f];
        float[] large = [900f, 100f, 500f, 10f, 70f, 40f];
        var (aggregated, parts) = GroupAdvantages.Aggregate(groups, [("a", 2.0, small), ("b", 0.5, large)]);
        var a = GroupAdvantages.Compute(groups, small).Advantages;
        var b = GroupAdvantages.Compute(groups, large).Advantages;
        for (int i = 0; i < groups.Length; i++)
        {
            Assert.Equal(2.0 * a[i] + 0.5 * b[i], aggregated[i], 5);
        }
        Assert.Equal(2, parts["a"].Groups);
        // One component of weight 1 is GRPO itself.
        var (single, _) = GroupAdvantages.Aggregate(groups, [("a", 1.0, small)]);
        Assert.Equal(a, single);
        // The point of it: summed first, the large reward decides every sign; aggregated, the small one still counts.
        var summed = GroupAdvantages.Compute(groups, small.Zip(large, (x, y) => x + y).ToArray()).Advantages;
        var (even, _) = GroupAdvantages.Aggregate(groups, [("a", 1.0, small), ("b", 1.0, large)]);
        Assert.True(even[2] > summed[2] + 0.5, $"sample 2: aggregated {even[2]} vs summed {summed[2]}");
        Assert.Throws<ArgumentException>(() => GroupAdvantages.Aggregate(groups, []));
    }

    [Theory]
    [InlineData(new[] { "reward_mix=advantage_aggr", "algorithm=grpo", "sample.group_size=2" }, "reward_fn = \"weighted\"")]
    [InlineData(new[] { "reward_mix=advantage_aggr", "reward_fn=weighted", "rewards={ brightness = 1.0 }" }, "algorithm = \"grpo\"")]
    [InlineData(new[] { "reward_mix=sum" }, "advantage_aggr")]
    public void RewardMixNeedsAWeightedRewardAndGrpo(string[] set, string expected)
    {
        var e = Assert.Throws<Ddpo.Base.ConfigException>(() => DdpoConfig.Load(null, null, set));
        Assert.Contains("reward_mix", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
