using Ddpo.Training;
using Xunit;

namespace Ddpo.Tests.Training;

public sealed class TrainingRngTests
{
    [Fact]
    public void MatchesXoshiro256StarStarReference()
    {
        // Reference outputs of xoshiro256** from the state {1, 2, 3, 4}.
        var rng = TrainingRng.FromState([1UL, 2UL, 3UL, 4UL]);
        Assert.Equal(11520UL, rng.NextUInt64());
        Assert.Equal(0UL, rng.NextUInt64());
        Assert.Equal(1509978240UL, rng.NextUInt64());
        Assert.Equal(1215971899390074240UL, rng.NextUInt64());
        // splitmix64 from 0 gives 0xE220A8397B1DCDAF as its first word.
        Assert.Equal(0xE220A8397B1DCDAFUL, new TrainingRng(0UL).GetState()[0]);
    }

    [Fact]
    public void StateRoundTripResumesTheSameStream()
    {
        var rng = new TrainingRng(42L);
        for (int i = 0; i < 17; i++) rng.NextUInt64();
        var saved = rng.GetState();
        var expected = Enumerable.Range(0, 10).Select(_ => rng.Next(1000)).Concat(rng.Permutation(20)).ToArray();
        var resumed = TrainingRng.FromState(saved);
        var actual = Enumerable.Range(0, 10).Select(_ => resumed.Next(1000)).Concat(resumed.Permutation(20)).ToArray();
        Assert.Equal(expected, actual);
        Assert.Throws<ArgumentException>(() => TrainingRng.FromState([0UL, 0UL, 0UL, 0UL]));
        Assert.Throws<ArgumentException>(() => TrainingRng.FromState([1UL]));
    }

    [Fact]
    public void DrawsAreInRangeAndPermutationsArePermutations()
    {
        var rng = new TrainingRng(3UL);
        var counts = new int[7];
        for (int i = 0; i < 7000; i++) counts[rng.Next(7)]++;
        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
        for (int i = 0; i < 1000; i++)
        {
            Assert.InRange(rng.Next(-5, 5), -5, 4);
            Assert.InRange(rng.NextDouble(), 0.0, 0.9999999999999999);
            Assert.InRange(rng.NextInt64(long.MinValue, long.MaxValue), long.MinValue, long.MaxValue - 1);
        }
        var p = rng.Permutation(50);
        Assert.Equal(Enumerable.Range(0, 50), p.Order());
        Assert.NotEqual(Enumerable.Range(0, 50), p);
        Assert.NotEqual(new TrainingRng(1UL).NextUInt64(), new TrainingRng(2UL).NextUInt64());
        // Usable as a System.Random, with our stream (same seed -> same shuffle).
        int[] a = [.. Enumerable.Range(0, 10)], b = [.. Enumerable.Range(0, 10)];
        ((Random)new TrainingRng(5UL)).Shuffle(a);
        new TrainingRng(5UL).Shuffle(b);
        Assert.Equal(a, b);
    }
}
