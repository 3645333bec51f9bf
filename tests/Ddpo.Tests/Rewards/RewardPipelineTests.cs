using Ddpo.Rewards;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

public sealed class RewardPipelineTests
{
    /// <summary>A reward that reports when it starts and then waits for a gate the test opens.</summary>
    private sealed class GatedReward : IRewardFunction
    {
        public readonly TaskCompletionSource Gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly SemaphoreSlim Started = new(0);
        public string Name => "gated";

        public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
        {
            Started.Release();
            await Gate.Task.WaitAsync(ct);
            // Reward = mean pixel of each image, read after the caller has moved on.
            var means = batch.Images.mean([1, 2, 3]).data<float>().ToArray();
            return new RewardResult(means);
        }
    }

    [Fact]
    public async Task ScoringOverlapsWithTheCallerAndKeepsOrder()
    {
        var reward = new GatedReward();
        var pipeline = new RewardPipeline(reward, maxConcurrency: 2);
        var first = full(2, 3, 4, 4, 0.25f);
        var second = full(2, 3, 4, 4, 0.75f);
        var t1 = pipeline.Submit(JpegRewardTests.Batch(first));
        var t2 = pipeline.Submit(JpegRewardTests.Batch(second));
        // The caller's tensors can go at once: the pipeline scores its own copies.
        first.Dispose();
        second.Dispose();
        Assert.Equal(2, pipeline.PendingCount);

        // Both batches start scoring while the caller is still "sampling" (the gate is closed).
        Assert.True(await reward.Started.WaitAsync(TimeSpan.FromSeconds(10)), "first batch never started");
        Assert.True(await reward.Started.WaitAsync(TimeSpan.FromSeconds(10)), "second batch did not run concurrently");
        Assert.False(t1.IsCompleted || t2.IsCompleted);

        reward.Gate.SetResult();
        var results = await pipeline.WaitAllAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, pipeline.PendingCount);
        Assert.Equal([0.25f, 0.25f], results[0].Rewards);
        Assert.Equal([0.75f, 0.75f], results[1].Rewards);
    }

    [Fact]
    public async Task ConcurrencyIsLimited()
    {
        var reward = new GatedReward();
        var pipeline = new RewardPipeline(reward, maxConcurrency: 1);
        using var img = zeros(1, 3, 2, 2);
        _ = pipeline.Submit(JpegRewardTests.Batch(img));
        _ = pipeline.Submit(JpegRewardTests.Batch(img));
        Assert.True(await reward.Started.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(await reward.Started.WaitAsync(TimeSpan.FromMilliseconds(300)), "a second batch started beyond the limit of 1");
        reward.Gate.SetResult();
        Assert.Equal(2, (await pipeline.WaitAllAsync()).Count);
    }

    [Fact]
    public async Task JpegRewardThroughThePipelineMatchesDirectScoring()
    {
        using var images = JpegRewardTests.FlatAndNoise();
        var direct = (await new JpegIncompressibilityReward().ScoreAsync(JpegRewardTests.Batch(images), CancellationToken.None)).Rewards;
        var pipeline = new RewardPipeline(new JpegIncompressibilityReward());
        _ = pipeline.Submit(JpegRewardTests.Batch(images));
        var results = await pipeline.WaitAllAsync();
        Assert.Equal(direct, results.Single().Rewards);
    }

    [Fact]
    public async Task FailuresSurfaceAtWaitAll()
    {
        var pipeline = new RewardPipeline(new JpegRewardTests.ConstantReward("short", [1f]));
        using var img = zeros(2, 3, 2, 2);
        _ = pipeline.Submit(JpegRewardTests.Batch(img));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => pipeline.WaitAllAsync());
        Assert.Contains("1 values for 2 images", e.Message);
    }
}
