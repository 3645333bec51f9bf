using Ddpo.Prompts;
using Ddpo.Rewards;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Benchmarks;

/// <summary>The cost of a reward on batches of images.</summary>
/// <param name="Reward">The reward's name.</param>
/// <param name="Batch">Images per call.</param>
/// <param name="Resolution">Image side in pixels.</param>
/// <param name="MillisecondsPerBatch">Median of the timed calls.</param>
/// <param name="Finite">How many of the last call's rewards were finite (a reward that gave NaN did not score).</param>
internal sealed record RewardBenchmarkResult(string Reward, int Batch, int Resolution, double MillisecondsPerBatch, int Finite)
{
    /// <summary>Milliseconds per image.</summary>
    public double MillisecondsPerImage => MillisecondsPerBatch / Batch;

    /// <summary>Images scored per second.</summary>
    public double ImagesPerSecond => 1000.0 * Batch / MillisecondsPerBatch;
}

/// <summary>
/// Times a reward as training calls it: a batch of decoded images [B, 3, H, W] in [0, 1] on the policy's device and
/// dtype, with their prompts (and metadata), the median of timed calls after untimed warm-up ones. The images are
/// seeded noise: the cost of the learned rewards does not depend on what the pixels show (a remote reward's may).
/// </summary>
internal static class RewardBenchmark
{
    /// <summary>
    /// Scores <paramref name="batch"/> images of <paramref name="resolution"/> pixels with <paramref name="reward"/>,
    /// the prompts taken in turn from <paramref name="prompts"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A size is below 1 or there are no prompts.</exception>
    public static RewardBenchmarkResult Run(IRewardFunction reward, IReadOnlyList<PromptSample> prompts, int batch, int resolution,
        Device device, ScalarType dtype, int warmup = 1, int iterations = 5, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(reward);
        if (batch < 1) throw new ArgumentException($"--batch must be >= 1, got {batch}");
        if (resolution < 8) throw new ArgumentException($"--resolution must be >= 8, got {resolution}");
        if (warmup < 0) throw new ArgumentException($"--warmup must be >= 0, got {warmup}");
        if (iterations < 1) throw new ArgumentException($"--iters must be >= 1, got {iterations}");
        if (prompts.Count == 0) throw new ArgumentException("--prompts: no prompts");
        var chosen = Enumerable.Range(0, batch).Select(i => prompts[i % prompts.Count]).ToArray();
        using var images = Images(batch, resolution, device, dtype, seed);
        var rewardBatch = new RewardBatch(images, chosen.Select(p => p.Prompt).ToArray(), chosen.Select(p => p.Metadata).ToArray());
        RewardResult? last = null;
        double ms = MedianTimer.Milliseconds(() => last = reward.ScoreAsync(rewardBatch, CancellationToken.None).GetAwaiter().GetResult(),
            warmup, iterations, device);
        return new RewardBenchmarkResult(reward.Name, batch, resolution, ms, last!.Rewards.Count(float.IsFinite));
    }

    /// <summary>Seeded uniform noise in [0, 1], drawn in float32 on the CPU so that any device and dtype get the same pixels.</summary>
    private static Tensor Images(int batch, int resolution, Device device, ScalarType dtype, long seed)
    {
        using var scope = torch.NewDisposeScope();
        var images = torch.rand([batch, 3, resolution, resolution], dtype: ScalarType.Float32, generator: new Generator((ulong)seed)).to(dtype).to(device);
        return images.MoveToOuterDisposeScope();
    }
}
