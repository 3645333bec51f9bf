using Ddpo.Rewards;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

public sealed class ImageStatisticRewardTests
{
    private static RewardBatch Batch(Tensor images) => new(images, Enumerable.Repeat("a cat", (int)images.shape[0]).ToArray(),
        Enumerable.Repeat((IReadOnlyDictionary<string, string>)new Dictionary<string, string>(), (int)images.shape[0]).ToArray());

    [Fact]
    public async Task ContrastIsZeroForFlatImagesAndHalfForBlackAndWhiteHalves()
    {
        var flat = full(new long[] { 1, 3, 8, 8 }, 0.4f);
        var halves = zeros(1, 3, 8, 8);
        halves[.., .., .., 4..] = 1.0f;
        var r = await ImageStatisticReward.Contrast().ScoreAsync(Batch(cat([flat, halves])), CancellationToken.None);
        Assert.Equal(0f, r.Rewards[0], 6);
        Assert.Equal(0.5f, r.Rewards[1], 5);
    }

    [Fact]
    public async Task BrightnessIsTheMeanLuminance()
    {
        var black = zeros(1, 3, 4, 4);
        var white = ones(1, 3, 4, 4);
        var red = zeros(1, 3, 4, 4);
        red[.., 0] = 1.0f;
        var r = await ImageStatisticReward.Brightness().ScoreAsync(Batch(cat([black, white, red])), CancellationToken.None);
        Assert.Equal(0f, r.Rewards[0], 6);
        Assert.Equal(1f, r.Rewards[1], 5);
        Assert.Equal(0.299f, r.Rewards[2], 5);
        Assert.Equal(RewardNames.Brightness, new RewardRegistry().Create(RewardNames.Brightness).Name);
    }

    [Fact]
    public async Task ColorfulnessRanksSaturatedAboveGrey()
    {
        var grey = rand(new long[] { 1, 1, 8, 8 }, generator: new Generator(1)).expand(1, 3, 8, 8).contiguous();
        var colours = rand(new long[] { 1, 3, 8, 8 }, generator: new Generator(2));
        var r = await ImageStatisticReward.Colorfulness().ScoreAsync(Batch(cat([grey, colours])), CancellationToken.None);
        Assert.Equal(0f, r.Rewards[0], 5);
        Assert.True(r.Rewards[1] > 0.2f, $"colourful noise scored {r.Rewards[1]}");
    }

    [Fact]
    public async Task WatchedRewardKeepsTheOptimisedRewardAndAddsWatches()
    {
        var images = rand(new long[] { 2, 3, 16, 16 }, generator: new Generator(3));
        var plain = await new JpegCompressibilityReward().ScoreAsync(Batch(images), CancellationToken.None);
        var watched = new WatchedReward(new JpegCompressibilityReward(), [ImageStatisticReward.Contrast()]);
        var r = await watched.ScoreAsync(Batch(images), CancellationToken.None);
        Assert.Equal(plain.Rewards, r.Rewards);
        Assert.Equal(2, r.Details!["watch:image_contrast"].Length);
        Assert.Equal(RewardNames.JpegCompressibility, watched.Name);
    }
}
