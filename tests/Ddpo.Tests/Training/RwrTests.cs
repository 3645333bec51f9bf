using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

/// <summary>RWR and sparse RWR against jannerm/ddpo's formulas (ddpo/utils/array.py, logger.py, training/diffusion.py).</summary>
[Collection("training")]
public sealed class RwrTests
{
    [Fact]
    public void SoftmaxWeightsAreJannermsSoftmaxOfRewardsTimesTemperature()
    {
        // JPEG-compressibility-like rewards (minus kB) and jannerm's temperature 1/5.
        float[] rewards = [-12.3f, -10.1f, -15.7f, -9.8f, -11.0f, -10.1f, -14.2f];
        const double temperature = 0.2;
        var w = RwrWeights.Softmax(rewards, temperature);
        // Written out directly: N * exp(r_i * T) / sum_j exp(r_j * T) (no shift needed at these magnitudes).
        double z = rewards.Sum(r => Math.Exp((double)r * temperature));
        for (int i = 0; i < rewards.Length; i++)
        {
            double expected = rewards.Length * Math.Exp((double)rewards[i] * temperature) / z;
            Assert.Equal(expected, w[i], 5);
        }
        Assert.Equal(rewards.Length, w.Sum(), 4);
        Assert.Equal(w[1], w[5]); // equal rewards, equal weights

        // exp(5 ln 3 * 0.2) = 3: two samples get weights 2 * [1, 3] / 4.
        var two = RwrWeights.Softmax([0f, (float)(5 * Math.Log(3))], 0.2);
        Assert.Equal(0.5, two[0], 5);
        Assert.Equal(1.5, two[1], 5);
        // The temperature multiplies: a larger one is sharper; 0 weighs every sample equally.
        var sharper = RwrWeights.Softmax(rewards, 2.0);
        Assert.True(sharper[3] > w[3], "the best sample gains weight with a larger temperature");
        Assert.All(RwrWeights.Softmax(rewards, 0), v => Assert.Equal(1f, v));
        // kB-scale rewards do not overflow: only differences count.
        var big = RwrWeights.Softmax([1000f, 1010f], 0.2);
        Assert.Equal(2 / (1 + Math.Exp(2)), big[0], 5);
        Assert.Equal(2 * Math.Exp(2) / (1 + Math.Exp(2)), big[1], 5);
        Assert.Empty(RwrWeights.Softmax([], 0.2));
        Assert.Throws<ArgumentOutOfRangeException>(() => RwrWeights.Softmax(rewards, -1));
    }

    [Fact]
    public void SparseKeepsExactlyTheSamplesAtOrAboveNumpysPercentile()
    {
        float[] rewards = [3, 9, 1, 10, 4, 2, 8, 6, 5, 7];
        // numpy.percentile(rewards, 90) = 9.1 (linear interpolation): only the 10 (index 3) is kept.
        Assert.Equal(9.1, RwrWeights.Percentile(rewards, 90), 9);
        Assert.Equal([3L], RwrWeights.AtOrAbovePercentile(rewards, 90));
        // numpy.percentile(rewards, 50) = 5.5: 9, 10, 8, 6, 7.
        Assert.Equal([1L, 3L, 6L, 7L, 9L], RwrWeights.AtOrAbovePercentile(rewards, 50));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), RwrWeights.AtOrAbovePercentile(rewards, 0));
        Assert.Equal([3L], RwrWeights.AtOrAbovePercentile(rewards, 100));
        // Ties at the threshold are kept (>=): numpy.percentile([1, 2, 2, 2, 3], 50) = 2.
        Assert.Equal([1L, 2L, 3L, 4L], RwrWeights.AtOrAbovePercentile([1, 2, 2, 2, 3], 50));
        // Interpolated thresholds: sorted [-1.25, 0.5, 2, 3]; q = 75 -> 2 + 0.25 * 1 = 2.25; q = 30 -> -1.25 + 0.9 * 1.75 = 0.325.
        float[] mixed = [0.5f, -1.25f, 3.0f, 2.0f];
        Assert.Equal(2.25, RwrWeights.Percentile(mixed, 75), 6);
        Assert.Equal([2L], RwrWeights.AtOrAbovePercentile(mixed, 75));
        Assert.Equal(0.325, RwrWeights.Percentile(mixed, 30), 6);
        Assert.Equal([0L, 2L, 3L], RwrWeights.AtOrAbovePercentile(mixed, 30));
        Assert.Throws<ArgumentOutOfRangeException>(() => RwrWeights.AtOrAbovePercentile(rewards, 101));
    }

    [Fact]
    public void WeightedLossGivesEverySampleItsShareWhicheverMicroBatchItFallsIn()
    {
        // Five samples with loss_i(p) = |p - c_i|^2 and weights w_i, trained in micro-batches of 2
        // (2, 2, then 1) accumulated into one optimizer step (each micro-loss divided by their number).
        using var scope = NewDisposeScope();
        var centers = tensor(new double[,] { { 1, 0 }, { 0, 2 }, { -1, 1 }, { 3, -2 }, { 0.5, 0.5 } });
        var weights = tensor(new double[] { 0.2, 1.7, 0.6, 1.9, 0.6 });
        const int batchSize = 2, microBatches = 3;
        var p = tensor(new double[] { 0.3, -0.4 }).requires_grad_(true);
        Tensor Losses(Tensor rows) => (p - centers.index_select(0, rows)).pow(2).sum(1);
        long[][] batches = [[0, 1], [2, 3], [4]];
        foreach (var rows in batches)
        {
            var idx = tensor(rows);
            var micro = RwrStrategy.Weighted(Losses(idx), weights.index_select(0, idx), batchSize);
            (micro / microBatches).backward();
        }
        var accumulated = p.grad!.clone();

        // The reference: the weighted regression over the whole epoch, sum_i w_i loss_i, scaled by 1 / (B * M).
        p.grad!.zero_();
        ((weights * Losses(arange(5L))).sum() / (batchSize * microBatches)).backward();
        TensorAssert.Close(p.grad!, accumulated, atol: 1e-12, rtol: 0, what: "gradient");

        // A full batch is jannerm/ddpo's loss: (loss * weights / batch_size).sum().
        var full = tensor(new long[] { 0, 1 });
        using (no_grad())
        {
            var ours = RwrStrategy.Weighted(Losses(full), weights.index_select(0, full), batchSize).item<double>();
            var theirs = (Losses(full) * (weights.index_select(0, full) / batchSize)).sum().item<double>();
            Assert.Equal(theirs, ours, 12);
            // A mean over the samples present would count the lone last sample twice.
            var last = tensor(new long[] { 4 });
            var lone = RwrStrategy.Weighted(Losses(last), weights.index_select(0, last), batchSize).item<double>();
            Assert.Equal((weights[4] * Losses(last)).item<double>() / 2, lone, 12);
        }
        Assert.Throws<ArgumentException>(() => RwrStrategy.Weighted(Losses(full), weights, batchSize));
    }

    [Fact]
    public void RegressionLossIsTheWeightedGuidedDenoisingLoss()
    {
        using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x0 = randn(new long[] { 2, 3, 16, 16 }, generator: new Generator(11)).clamp(-1, 1);
        var embeds = pipeline.EncodePrompts(["a cat", "a dog"]);
        var negative = pipeline.EncodePrompts(["", ""]);
        var weights = tensor(new float[] { 1.5f, 0.5f });
        const double guidance = 5.0;
        const int batchSize = 4;

        // jannerm/ddpo's train_step written out: t ~ U{0..999}, x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) noise,
        // prediction = eps_uncond + g (eps_cond - eps_uncond), per-sample mean of (noise - prediction)^2,
        // weighted sum divided by the batch size. Same draws: t first, then the noise.
        var gen = new Generator(7);
        var t = randint(0, 1000, [2], dtype: ScalarType.Int64, generator: gen);
        var noise = randn(x0.shape, generator: gen);
        var a = pipeline.Scheduler.AlphasCumprod.index_select(0, t).to(ScalarType.Float32).view(-1, 1, 1, 1);
        var noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise;
        var cond = pipeline.Unet.forward(noisy, t, embeds);
        var uncond = pipeline.Unet.forward(noisy, t, negative);
        var guided = uncond + guidance * (cond - uncond);
        double Expected(Tensor prediction) =>
            ((noise - prediction).pow(2).mean([1L, 2L, 3L]) * weights).sum().item<float>() / batchSize;

        var policy = pipeline.Policy;
        Tensor Loss(Tensor? negativeEmbeds) => RwrStrategy.Weighted(policy.DenoisingLoss(x0, StableDiffusionPolicy.Condition(embeds.alias()),
            negativeEmbeds is null ? null : StableDiffusionPolicy.Condition(negativeEmbeds.alias()), guidance, new Generator(7)), weights, batchSize);
        var loss = Loss(negative);
        Assert.Equal(Expected(guided), loss.item<float>(), 4);
        var plain = Loss(null);
        Assert.Equal(Expected(cond), plain.item<float>(), 4);
        Assert.NotEqual(loss.item<float>(), plain.item<float>());
    }

    [Theory]
    [InlineData(75, 1)]
    [InlineData(50, 2)]
    [InlineData(0, 4)]
    public async Task SparseRwrTrainsOnTheSamplesAtOrAboveThePercentile(double percentile, int kept)
    {
        // Four distinct rewards per epoch: numpy.percentile at 75 lies between the 3rd and 4th (keeps 1),
        // at 50 between the 2nd and 3rd (keeps 2), at 0 keeps all.
        var config = DdpoConfig.Load(null, "compressibility",
        [
            "prompt_fn=\"simple_animals\"", "sample.num_steps=3", "sample.batch_size=4", "sample.num_batches_per_epoch=1",
            "train.batch_size=2", "train.gradient_accumulation_steps=1", "num_epochs=1", "pretrained.dtype=\"fp32\"",
            "logging.num_eval_images=0", "save_freq=1", "device=\"cpu\"", "algorithm=\"rwr_sparse\"", FormattableString.Invariant($"rwr.percentile={percentile:F1}"),
        ]);
        var dir = TestPaths.NewTempDir();
        using (var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel))
        using (var trainer = new DdpoTrainer(config, pipeline.Policy, dir, false, new MeanBrightnessReward()))
        {
            await trainer.RunAsync();
        }
        var line = Assert.Single(MetricsLog.ReadAll(Path.Combine(dir, "metrics.jsonl")));
        Assert.Equal(4.0, (double)line["samples"]!);
        Assert.Equal(kept, (double)line["samples_trained"]!);
        // Micro-batches of 2 over the kept samples, 3 steps each, one optimizer step per micro-batch.
        Assert.Equal(Math.Ceiling(kept / 2.0), (double)line["optimizer_steps"]!);
        Assert.True(double.IsFinite((double)line["loss"]!));
        Directory.Delete(dir, true);
    }

    /// <summary>The mean pixel value of each image: a continuous reward, so four samples have four distinct rewards.</summary>
    private sealed class MeanBrightnessReward : IRewardFunction
    {
        public string Name => "mean_brightness";

        public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
        {
            using var mean = batch.Images.to(ScalarType.Float32).mean([1L, 2L, 3L]);
            return Task.FromResult(new RewardResult(mean.data<float>().ToArray()));
        }
    }
}
