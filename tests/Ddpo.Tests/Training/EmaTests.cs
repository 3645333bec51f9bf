using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

/// <summary>
/// The EMA of the trainable weights (<c>train.ema</c>, Flow-GRPO's EMAModuleWrapper): its update against a hand
/// computation, and a run with it that resumes bit for bit and exports the average.
/// </summary>
[Collection("training")]
public sealed class EmaTests
{
    /// <summary>
    /// decay 0.95, interval 2: steps 1, 3 and 5 update (n + 1 even) with d = min((1 + n) / (10 + n), 0.95) = 2/11, 4/13,
    /// 6/15; steps 2 and 4 leave the average alone. Computed in double; the EMA is float32, so 1e-6.
    /// </summary>
    [Fact]
    public void EmaUpdateMatchesAHandComputation()
    {
        var p = new Parameter(tensor(new float[] { 1, -2, 0.5f }));
        using var ema = new EmaWeights([p], 0.95, 2);
        double[] e = [1, -2, 0.5];
        for (int n = 1; n <= 5; n++)
        {
            double[] theta = [1 + n, -2 + 0.5 * n, 0.5 - 0.25 * n * n];
            using (no_grad()) p.copy_(tensor(theta.Select(x => (float)x).ToArray()));
            ema.Step(n);
            if ((n + 1) % 2 == 0)
            {
                double d = Math.Min((1.0 + n) / (10.0 + n), 0.95);
                for (int i = 0; i < 3; i++) e[i] += (1 - d) * (theta[i] - e[i]);
            }
            var got = ema.Average.Values[0].data<float>().ToArray();
            for (int i = 0; i < 3; i++) Assert.Equal(e[i], got[i], 1e-6);
        }
        Assert.Equal(0.95, EmaWeights.CurrentDecay(1000, 0.95));
        Assert.Equal(2.0 / 11, EmaWeights.CurrentDecay(1, 0.95));
    }

    private static (List<EpochMetrics> Metrics, float[][] Weights, float[][] Ema) Train(string runDir, int epochs, bool resume)
    {
        var config = TinyTraining.Config("num_epochs=" + epochs, "train.batch_size=2", "train.ema=true", "train.ema_decay=0.95",
            "train.ema_update_interval=2", "train.learning_rate=1e-2");
        using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        using var trainer = new DdpoTrainer(config, pipeline.Policy, runDir, resume, RewardFactory.CreateForTraining(config));
        trainer.RunAsync().GetAwaiter().GetResult();
        static float[][] Values(IEnumerable<Tensor> ts) => ts.Select(t => t.detach().flatten().data<float>().ToArray()).ToArray();
        var weights = Values(trainer.Weights.Parameters);
        var ema = Values(trainer.Ema!.Average.Values);
        // The exported file is the average: exporting with the average swapped in writes the same bytes.
        var check = Path.Combine(runDir, "check.safetensors");
        using (trainer.Ema.Applied()) trainer.Weights.Export(check);
        Assert.Equal(File.ReadAllBytes(check), File.ReadAllBytes(Path.Combine(runDir, trainer.Weights.ExportFileName)));
        // ... and the live weights are back after the swap.
        Assert.Equal(weights, Values(trainer.Weights.Parameters));
        // ddpo eval loads the newest checkpoint's average into fresh weights.
        using (var other = TextToImagePipeline.FromPretrained(TinyModels.Pixel))
        {
            var fresh = TrainableWeights.For(config, other.Policy);
            var latest = Checkpoint.Latest(RunFolder.At(runDir))!;
            var (_, tensors) = latest.Load();
            EmaWeights.LoadForEvaluation(config, fresh, tensors, latest.Path);
            foreach (var t in tensors.Values) t.Dispose();
            Assert.Equal(ema, Values(fresh.Parameters));
        }
        return (MetricsLog.ReadAll(Path.Combine(runDir, "metrics.jsonl")).ToList(), weights, ema);
    }

    /// <summary>
    /// DDPO-IS on the tiny pixel model with two optimizer steps per epoch: 3 epochs (EMA updates after steps 1, 3, 5)
    /// equal 2 epochs + resume to 3, in the metrics, the weights and the EMA.
    /// </summary>
    [Fact]
    public void EmaRunResumesExactlyAndExportsTheAverage()
    {
        var full = TestPaths.NewTempDir();
        var split = TestPaths.NewTempDir();
        try
        {
            var expected = Train(full, 3, false);
            Train(split, 2, false);
            var resumed = Train(split, 3, true);
            Assert.Equal(3, resumed.Metrics.Count);
            for (int e = 0; e < 3; e++)
            {
                Assert.Equal(2.0, (double)expected.Metrics[e]["optimizer_steps"]!);
                foreach (var key in new[] { "reward_mean", "loss", "approx_kl", "clipfrac" })
                {
                    Assert.Equal((double)expected.Metrics[e][key]!, (double)resumed.Metrics[e][key]!);
                }
            }
            Assert.Equal(expected.Weights, resumed.Weights);
            Assert.Equal(expected.Ema, resumed.Ema);
            Assert.NotEqual(expected.Weights, expected.Ema);
        }
        finally
        {
            Directory.Delete(full, true);
            Directory.Delete(split, true);
        }
    }
}
