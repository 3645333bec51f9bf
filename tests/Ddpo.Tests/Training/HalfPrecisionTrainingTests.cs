using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Tests.Support;
using Ddpo.Training;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

/// <summary>Whole DDPO epochs of the tiny pixel model with fp16 and bf16 frozen weights (LoRA stays float32).</summary>
[Collection("training")]
public sealed class HalfPrecisionTrainingTests(ITestOutputHelper output)
{
    private static DdpoConfig TinyConfig(string dtype, params string[] extra) => DdpoConfig.Load(null, "compressibility",
    [
        "prompt_fn=\"simple_animals\"", "sample.num_steps=3", "sample.batch_size=4", "sample.num_batches_per_epoch=1",
        "train.batch_size=4", "train.gradient_accumulation_steps=1", "num_epochs=1", $"pretrained.dtype=\"{dtype}\"",
        "logging.num_eval_images=0", "save_freq=1", "device=\"cpu\"", .. extra,
    ]);

    /// <summary>Trains; returns the metrics and the norm of the LoRA up weights (zero before the first step).</summary>
    private static (List<EpochMetrics> Metrics, float LoraUpNorm) Train(DdpoConfig config, string runDir, bool resume = false)
    {
        var dtype = Ddpo.Runtime.TorchRuntime.ResolveDType(config.Pretrained.Dtype, CPU);
        using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel, CPU, dtype);
        using var trainer = new DdpoTrainer(config, pipeline.Policy, runDir, resume, RewardFactory.CreateForTraining(config));
        trainer.RunAsync().GetAwaiter().GetResult();
        Assert.All(trainer.Weights.Parameters, p => Assert.Equal(ScalarType.Float32, p.dtype));
        float norm = trainer.Weights.Lora!.Parameters.Where((_, i) => i % 2 == 1).Select(p => p.norm().item<float>()).Sum();
        return (MetricsLog.ReadAll(Path.Combine(runDir, "metrics.jsonl")).ToList(), norm);
    }

    [Fact]
    public void FirstImportanceRatioIsExactlyOneInFp16()
    {
        // Sampling and the training re-evaluation run the same fp16 UNet on the same inputs: the recomputed
        // log-probability must equal the recorded one bit for bit, as in float32.
        var dir = TestPaths.NewTempDir();
        var line = Assert.Single(Train(TinyConfig("fp16"), dir).Metrics);
        Assert.Equal(0.0, (double)line["first_ratio_max_dev"]!);
        Assert.Equal(0.0, (double)line["approx_kl"]!);
        Assert.Equal(65536.0, (double)line["loss_scale"]!); // loss_scaling = "auto" scales fp16 models
        Assert.Equal(1.0, (double)line["optimizer_steps"]! + (double)line["skipped_steps"]!);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void ResumingAnFp16RunWithLossScalingIsExact()
    {
        // Two optimizer steps per epoch and growth after 3 good steps: epoch 0 ends at scale 2^16 with 2 good steps
        // counted, and the scale doubles during epoch 1. A resume from epoch 0's checkpoint matches the
        // uninterrupted run only if both the scale and the growth counter are restored.
        string[] settings = ["train.batch_size=2", "train.loss_scale_growth_interval=3"];
        var full = TestPaths.NewTempDir();
        var split = TestPaths.NewTempDir();
        var expected = Train(TinyConfig("fp16", ["num_epochs=2", .. settings]), full).Metrics;
        Train(TinyConfig("fp16", ["num_epochs=1", .. settings]), split);
        var (state, tensors) = Checkpoint.Latest(RunFolder.At(split))!.Load();
        foreach (var t in tensors.Values) t.Dispose();
        Assert.Equal(65536f, state.LossScale);
        Assert.Equal(2, state.LossScaleGrowthTracker);
        var resumed = Train(TinyConfig("fp16", ["num_epochs=2", .. settings]), split, resume: true).Metrics;
        Assert.Equal(2, resumed.Count);
        for (int e = 0; e < 2; e++)
        {
            output.WriteLine($"epoch {e}: loss_scale {expected[e]["loss_scale"]}, skipped {expected[e]["skipped_steps"]}, reward {expected[e]["reward_mean"]}");
            foreach (var key in new[] { "epoch", "reward_mean", "reward_std", "loss", "approx_kl", "clipfrac", "loss_scale", "skipped_steps", "optimizer_steps" })
            {
                Assert.Equal((double)expected[e][key]!, (double)resumed[e][key]!, 9);
            }
        }
        Assert.Equal(131072.0, (double)expected[1]["loss_scale"]!); // grew once, no step skipped
        Directory.Delete(full, true);
        Directory.Delete(split, true);
    }

    [Fact]
    public void Bf16TrainsWithoutLossScaling()
    {
        var dir = TestPaths.NewTempDir();
        var (metrics, loraUpNorm) = Train(TinyConfig("bf16"), dir);
        var line = Assert.Single(metrics);
        Assert.True(double.IsFinite((double)line["loss"]!));
        Assert.Equal(1.0, (double)line["optimizer_steps"]!);
        Assert.Equal(0.0, (double)line["skipped_steps"]!);
        Assert.Equal(1.0, (double)line["loss_scale"]!);
        Assert.Equal(0.0, (double)line["first_ratio_max_dev"]!);
        Assert.True(loraUpNorm > 0, "the LoRA up weights start at zero and must have moved");
        Directory.Delete(dir, true);
    }
}
