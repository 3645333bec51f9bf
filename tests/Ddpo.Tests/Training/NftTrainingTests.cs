using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

/// <summary>
/// DiffusionNFT end to end on a random tiny SD3: an interrupted run resumes bit for bit (weights, old policy, EMA,
/// metrics), and a short run raises the images' brightness well beyond the noise for three model/sampling seeds.
/// </summary>
[Collection("training")]
public sealed class NftTrainingTests(ITestOutputHelper output)
{
    /// <summary>
    /// The SD3 preset made tiny, with algorithm = "nft": ODE rollouts (eta 0), guidance 1, groups of 4, 4 steps of
    /// which int(4 x 0.99) = 3 are trained per sample; <paramref name="extra"/> overrides.
    /// </summary>
    internal static DdpoConfig Config(int seed, string[] extra) => DdpoConfig.Load(null, "sd3.5-compressibility-grpo",
    [
        "algorithm=\"nft\"", "prompt_fn=\"animals\"", "sample.num_steps=4", "sample.resolution=16", "sample.max_sequence_length=8",
        "sample.eta=0.0", "sample.samples_per_epoch=32", "sample.group_size=4", "sample.batch_size=8", "sample.guidance_scale=1.0",
        "train.cfg=false", "train.batch_size=8", "train.total_batch_size=32", "train.kl_coef=0.0", "train.learning_rate=3e-3",
        "use_lora=false", "num_epochs=20", "pretrained.dtype=\"fp32\"", "logging.num_eval_images=0",
        "device=\"cpu\"", "save_freq=100", $"seed={seed}", .. extra,
    ]);

    private static string TinyModel(string root, int seed)
    {
        var model = Path.Combine(root, "model");
        TinySd3Writer.Write(new TinyTransformerOptions { Seed = seed, SampleSize = 8 }, model);
        return model;
    }

    private sealed record Final(List<EpochMetrics> Metrics, float[][] Weights, float[][] Old, float[][] Ema);

    private static float[][] Values(IEnumerable<Tensor> tensors) => tensors.Select(t => t.detach().cpu().flatten().data<float>().ToArray()).ToArray();

    private static async Task<Final> TrainAsync(string model, DdpoConfig config, string runDir, bool resume)
    {
        using var pipeline = StableDiffusion3Pipeline.FromPretrained(model);
        pipeline.MaxSequenceLength = config.Sample.MaxSequenceLength;
        using var trainer = new DdpoTrainer(config, ((ITextToImagePipeline)pipeline).Policy, runDir, resume, ImageStatisticReward.Brightness());
        await trainer.RunAsync();
        return new Final(MetricsLog.ReadAll(Path.Combine(runDir, "metrics.jsonl")).ToList(), Values(trainer.Weights.Parameters),
            Values(trainer.NftOld!.Weights.Values), trainer.Ema is null ? [] : Values(trainer.Ema.Average.Values));
    }

    /// <summary>
    /// LoRA (so the KL reference is the adapters switched off, nft.kl_coef at its default), the EMA every step, two optimizer
    /// steps per epoch, the old policy's decay growing with the steps (decay_type 2 would stay 0 here: type 1): 3 epochs
    /// in one go equal 2 epochs, a checkpoint and a resumed third, exactly.
    /// </summary>
    [Fact]
    public async Task NftWithEmaResumesExactly()
    {
        var root = TestPaths.NewTempDir();
        try
        {
            var model = TinyModel(root, 3);
            string[] settings = ["use_lora=true", "lora.rank=2", "lora.alpha=2", "train.learning_rate=2e-2", "sample.samples_per_epoch=8",
                "sample.batch_size=4", "train.batch_size=4", "train.total_batch_size=4", "save_freq=1", "logging.num_eval_images=1",
                "train.ema=true", "train.ema_update_interval=1", "nft.decay_type=1"];
            var full = await TrainAsync(model, Config(5, [.. settings, "num_epochs=3"]), Path.Combine(root, "full"), false);
            await TrainAsync(model, Config(5, [.. settings, "num_epochs=2"]), Path.Combine(root, "split"), false);
            var resumed = await TrainAsync(model, Config(5, [.. settings, "num_epochs=3"]), Path.Combine(root, "split"), true);
            Assert.Equal(3, resumed.Metrics.Count);
            for (int e = 0; e < 3; e++)
            {
                Assert.Equal(2.0, (double)full.Metrics[e]["optimizer_steps"]!);
                foreach (var key in new[] { "reward_mean", "loss", "kl_mean", "zero_std_groups" })
                {
                    Assert.Equal((double)full.Metrics[e][key]!, (double)resumed.Metrics[e][key]!);
                }
            }
            Assert.True((double)full.Metrics[2]["kl_mean"]! > 0);
            Assert.Equal(full.Weights, resumed.Weights);
            Assert.Equal(full.Old, resumed.Old);
            Assert.Equal(full.Ema, resumed.Ema);
            // The three sets differ: the EMA lags the weights, and the old policy lags differently.
            Assert.NotEqual(full.Weights, full.Ema);
            Assert.NotEqual(full.Weights, full.Old);
            Assert.NotEqual(full.Ema, full.Old);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    /// <summary>
    /// FLUX (guidance through its embedding, no classifier-free pass) trains with NFT and σ ~ U(0, 1): while the weights are
    /// the base's (epoch 0's micro-steps, before its one optimizer step) the KL to the frozen copy is exactly 0, then
    /// positive; the old policy moved 0.999 of the way to the weights after the first step (decay_type 1: d = 0.001).
    /// </summary>
    [Fact]
    public async Task NftTrainsATinyFluxWithUniformTimes()
    {
        var root = TestPaths.NewTempDir();
        try
        {
            var model = Path.Combine(root, "model");
            TinyFluxWriter.Write(new TinyTransformerOptions { Seed = 2, SampleSize = 8 }, model);
            var config = DdpoConfig.Load(null, "flux-compressibility-grpo",
            [
                "algorithm=\"nft\"", "prompt_fn=\"animals\"", "sample.num_steps=3", "sample.resolution=16", "sample.max_sequence_length=8",
                "sample.eta=0.0", "sample.samples_per_epoch=8", "sample.group_size=4", "sample.batch_size=8", "sample.guidance_scale=3.5",
                "train.batch_size=8", "train.total_batch_size=8", "train.kl_coef=0.0", "train.learning_rate=3e-3",
                "nft.timestep_distribution=\"uniform\"", "use_lora=false", "num_epochs=2", "pretrained.dtype=\"fp32\"",
                "logging.num_eval_images=0", "device=\"cpu\"", "save_freq=100", "seed=4",
            ]);
            using var pipeline = FluxPipeline.FromPretrained(model);
            pipeline.MaxSequenceLength = config.Sample.MaxSequenceLength;
            using var trainer = new DdpoTrainer(config, ((ITextToImagePipeline)pipeline).Policy, Path.Combine(root, "run"), false, ImageStatisticReward.Brightness());
            var initial = Values(trainer.Weights.Parameters);
            await trainer.RunAsync();
            var m = MetricsLog.ReadAll(Path.Combine(root, "run", "metrics.jsonl"));
            Assert.Equal(0.0, (double)m[0]["kl_mean"]!);
            Assert.True((double)m[1]["kl_mean"]! > 0);
            Assert.All(m, line => Assert.True(double.IsFinite((double)line["loss"]!) && (double)line["loss"]! > 0, $"loss {line["loss"]}"));
            // After epoch 1 (2 steps): old = d2 (d1 old0 + (1 - d1) theta1) + (1 - d2) theta2: strictly between, so unlike both.
            var weights = Values(trainer.Weights.Parameters);
            var old = Values(trainer.NftOld!.Weights.Values);
            Assert.NotEqual(weights, old);
            Assert.NotEqual(initial, old);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    /// <summary>
    /// DiffusionNFT learns: on a random tiny SD3 (whole transformer, lr 3e-3, one optimizer step per epoch of 32 ODE
    /// samples in groups of 4, beta 1, decay_type 1, KL 1e-4 to a frozen copy) the brightness rises by more than 5 SE
    /// in 8 epochs for three seeds.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task ShortNftRunOnATinySd3RaisesBrightness(int seed)
    {
        var root = TestPaths.NewTempDir();
        var config = Config(seed, ["num_epochs=8"]);
        var m = (await TrainAsync(TinyModel(root, seed), config, Path.Combine(root, "run"), false)).Metrics;
        double first = (double)m[0]["reward_mean"]!, firstSem = (double)m[0]["reward_sem"]!;
        var last = m.TakeLast(2).ToArray();
        double lastMean = last.Average(x => (double)x["reward_mean"]!);
        double lastSem = Math.Sqrt(last.Sum(x => Math.Pow((double)x["reward_sem"]!, 2))) / last.Length;
        double gain = lastMean - first, se = Math.Sqrt(firstSem * firstSem + lastSem * lastSem);
        output.WriteLine(string.Join(" ", m.Select(x => ((double)x["reward_mean"]!).ToString("F4"))));
        output.WriteLine($"seed {seed}: {first:F4} -> {lastMean:F4} gain {gain:F4} = {gain / se:F2} SE");
        Assert.True(gain > 5 * se, $"brightness went from {first:F4} ± {firstSem:F4} to {lastMean:F4} ± {lastSem:F4}: gain {gain:F4} is not above 5 SE ({5 * se:F4})");
        Directory.Delete(root, true);
    }
}
