using Ddpo.Cli;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Tests.Cli;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

/// <summary>
/// The non-finite guard in every precision (<see cref="NonFiniteGuard"/>): a step with a non-finite loss or gradient is
/// skipped and counted with the weights and AdamW state untouched; divergence stops the run with exit code 3 and the
/// newest checkpoint left as the last good one; no checkpoint with a non-finite tensor is ever written or resumed from.
/// </summary>
[Collection("cli")]
public sealed class NonFiniteGuardTests
{
    private static string[] TrainArgs(string runDir, int epochs, params string[] extra) =>
    [
        "train", "--preset", "compressibility", "--model", TinyModels.Pixel, "--run-dir", runDir, "--epochs", epochs.ToString(),
        "--set", "prompt_fn=animals_train", "--set", "sample.num_steps=3", "--set", "sample.batch_size=4",
        "--set", "sample.num_batches_per_epoch=1", "--set", "train.batch_size=4", "--set", "train.gradient_accumulation_steps=1",
        "--set", "pretrained.dtype=fp32", "--set", "logging.num_eval_images=2", "--device", "cpu", .. extra,
    ];

    [Fact]
    public async Task AnAbsurdLearningRateStopsWithExitCode3LeavingOnlyFiniteCheckpointsToResumeFrom()
    {
        var root = TestPaths.NewTempDir("ddpo-nonfinite-cli");
        var run = Path.Combine(root, "run");
        var timeout = TimeSpan.FromMinutes(5);
        try
        {
            // One good epoch and its checkpoint.
            var (code, output) = await CliProcess.RunAsync(1, TrainArgs(run, 1, "--set", "save_freq=1"), timeout);
            Assert.True(code == 0, output);
            var good = Path.Combine(run, "checkpoints", RunFolder.CheckpointFolderName(0));
            Assert.True(Directory.Exists(good));

            // lr = 1e6 without clipping: the first step throws the LoRA weights so far that the next gradients are NaN;
            // the steps are skipped until train.max_skipped_steps (3) in a row stop the run, before its last epoch's checkpoint.
            (code, output) = await CliProcess.RunAsync(1, TrainArgs(run, 8, "--resume", "--set", "save_freq=100",
                "--set", "train.learning_rate=1e6", "--set", "train.max_grad_norm=1e30"), timeout);
            Assert.True(code == CliApp.TrainingStopped, output);
            // The console wraps long lines, paths included: compare without whitespace.
            var squeezed = Squeeze(output);
            void Says(string what) => Assert.True(squeezed.Contains(Squeeze(what), StringComparison.Ordinal), $"'{what}' not in:\n{output}");
            Says("training stopped in epoch");
            Says("3 optimizer steps in a row were skipped (train.max_skipped_steps = 3)");
            Says("not finite");
            Says($"the newest checkpoint, {good} (epoch 0), is the last good one");
            Says("train.learning_rate");
            Says("train.max_grad_norm");
            Says("ddpo doctor");
            Says($"Then continue from {good} with the same command plus --resume");
            Says("skipped 1 optimizer step(s) whose loss or gradients were not finite");
            // The skipped epochs reached metrics.jsonl before the stop, counted.
            var diverged = MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl"));
            Assert.Contains(diverged, m => (double)m["skipped_steps"]! == 1);

            // Only finite checkpoints: the good one, untouched.
            var checkpoints = Directory.GetDirectories(Path.Combine(run, "checkpoints")).Select(Path.GetFileName).ToArray();
            Assert.Equal(new[] { RunFolder.CheckpointFolderName(0) }, checkpoints);
            var (_, tensors) = Checkpoint.At(good).Load(); // refuses a non-finite tensor
            foreach (var t in tensors.Values) t.Dispose();

            // Resuming with a sane learning rate continues from it.
            (code, output) = await CliProcess.RunAsync(1, TrainArgs(run, 3, "--resume", "--set", "save_freq=1", "--set", "train.learning_rate=1e-4"), timeout);
            Assert.True(code == 0, output);
            var metrics = MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl"));
            Assert.Equal([0.0, 1.0, 2.0], metrics.Select(m => (double)m["epoch"]!).ToArray());
            Assert.All(metrics, m => Assert.Equal(0.0, (double)m["skipped_steps"]!));
            Assert.All(metrics, m => Assert.True(double.IsFinite((double)m["loss"]!)));
            Assert.Equal(1e-4, (double)metrics[2]["learning_rate"]!);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Fact]
    public async Task ANaNInOneMicroStepsGradientIsSkippedAndCountedWithWeightsAndAdamWStateUntouched()
    {
        var root = TestPaths.NewTempDir("ddpo-nonfinite-skip");
        try
        {
            // Epoch 0 takes one optimizer step over 3 micro-steps; its first micro-step's gradient gets a NaN.
            var config = TinyTraining.Config("num_epochs=2");
            var run = Path.Combine(root, "run");
            var messages = new List<string>();
            using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
            using var trainer = new DdpoTrainer(config, pipeline.Policy, run, false, RewardFactory.CreateForTraining(config), new Messages(messages))
            {
                GradientFault = (epoch, micro) => epoch == 0 && micro == 0,
            };
            var initialWeights = trainer.Weights.Parameters.Select(p => p.detach().clone()).ToArray();
            var initialOptimizer = OptimizerBytes(trainer.Optimizer);
            await trainer.RunAsync();

            var metrics = MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl"));
            Assert.Equal(1.0, (double)metrics[0]["skipped_steps"]!);
            Assert.Equal(0.0, (double)metrics[0]["optimizer_steps"]!);
            Assert.Equal(0.0, (double)metrics[1]["skipped_steps"]!);
            Assert.Equal(1.0, (double)metrics[1]["optimizer_steps"]!);
            Assert.Contains(messages, m => m.StartsWith("epoch 0: skipped 1 optimizer step(s) whose loss or gradients were not finite", StringComparison.Ordinal));
            Assert.DoesNotContain(messages, m => m.StartsWith("epoch 1: skipped", StringComparison.Ordinal));

            // After the skipped step (epoch 0's checkpoint) the weights and the AdamW state are exactly the initial ones ...
            var (afterSkip, afterSkipOptimizer) = ReadCheckpoint(run, 0);
            for (int i = 0; i < initialWeights.Length; i++)
            {
                Assert.True(initialWeights[i].equal(afterSkip[i]).all().item<bool>(), $"param.{i:D4} changed across the skipped step");
            }
            Assert.Equal(initialOptimizer, afterSkipOptimizer);
            // ... and the next, finite step changes both (the comparison can fail).
            var (afterStep, afterStepOptimizer) = ReadCheckpoint(run, 1);
            Assert.Contains(Enumerable.Range(0, initialWeights.Length), i => !initialWeights[i].equal(afterStep[i]).all().item<bool>());
            Assert.NotEqual(initialOptimizer, afterStepOptimizer);
            foreach (var t in initialWeights.Concat(afterSkip).Concat(afterStep)) t.Dispose();
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Fact]
    public void NonFiniteWeightsAfterAStepAndTooManySkipsInARowStopTheGuard()
    {
        using var w = new Parameter(tensor(new[] { 1f, 2f }));
        var guard = new NonFiniteGuard(maxSkippedInARow: 2);
        guard.AfterStep([w], step: 1);
        guard.Flush(epoch: 0); // finite: nothing
        using (no_grad()) w[1] = tensor(float.PositiveInfinity);
        guard.AfterStep([w], step: 4);
        var e = Assert.Throws<NonFiniteStepException>(() => guard.Flush(epoch: 7));
        Assert.Equal(7, e.Epoch);
        Assert.Contains("trainable weights became non-finite (NaN/inf) after optimizer step 4 of epoch 7", e.Message);

        guard.Count(taken: false, counts: true, "the gradients were", 3);
        guard.Count(taken: true, counts: true, "", 3); // a good step resets the count
        guard.Count(taken: false, counts: true, "the gradients were", 3);
        guard.Count(taken: false, counts: false, "the gradients were", 3); // a loss-scaler back-off does not count
        var stop = Assert.Throws<NonFiniteStepException>(() => guard.Count(taken: false, counts: true, "the loss was", 4));
        Assert.Contains("2 optimizer steps in a row were skipped (train.max_skipped_steps = 2), the last in epoch 4, because the loss was not finite", stop.Message);
    }

    [Fact]
    public void TheCheckpointWriterRefusesNonFiniteTensorsAndTheLimitKeepsTheNewestGoodCheckpoint()
    {
        var root = TestPaths.NewTempDir("ddpo-nonfinite-store");
        try
        {
            var run = new RunFolder(root);
        const int keepLimit = 1;
            using var good = tensor(new[] { 1f, 2f, 3f });
            using var bad = tensor(new[] { 1f, float.NaN, 3f });
            using var bytes = tensor(new byte[] { 1, 2, 255 });
            var first = Checkpoint.Save(run, new TrainingState { Epoch = 0 }, new Dictionary<string, Tensor> { ["param.0000"] = good, ["optimizer.state"] = bytes }, keepLimit);

            var e = Assert.Throws<NonFiniteTensorException>(() =>
                Checkpoint.Save(run, new TrainingState { Epoch = 1 }, new Dictionary<string, Tensor> { ["param.0000"] = good, ["param.0001"] = bad, ["optimizer.state"] = bytes }, keepLimit));
            Assert.Contains("'param.0001'", e.Message);
            Assert.Contains(RunFolder.CheckpointFolderName(1), e.Message);
            // Nothing written, and the limit of 1 did not prune the good checkpoint for the refused one.
            Assert.Equal(new[] { first }, Checkpoint.List(run));
            Assert.False(Directory.Exists(Path.Combine(run.CheckpointsDir, RunFolder.CheckpointFolderName(1))));
            Assert.Equal(new[] { RunFolder.CheckpointFolderName(0) }, Directory.GetDirectories(run.CheckpointsDir).Select(Path.GetFileName).ToArray());
            var (_, tensors) = Checkpoint.At(first.Path).Load();
            Assert.Equal(new[] { 1f, 2f, 3f }, tensors["param.0000"].data<float>().ToArray());
            foreach (var t in tensors.Values) t.Dispose();

            using var inf = tensor(new[] { float.NegativeInfinity });
            Assert.Contains("'param.0000'", Assert.Throws<NonFiniteTensorException>(() =>
                Checkpoint.Save(run, new TrainingState { Epoch = 2 }, new Dictionary<string, Tensor> { ["param.0000"] = inf }, keepLimit)).Message);

            // A newer good checkpoint replaces it.
            var newer = Checkpoint.Save(run, new TrainingState { Epoch = 2 }, new Dictionary<string, Tensor> { ["param.0000"] = good }, keepLimit);
            Assert.Equal(new[] { newer }, Checkpoint.List(run));
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Fact]
    public void ResumeRefusesANonFiniteCheckpointNamingTheFileAndTensor()
    {
        var root = TestPaths.NewTempDir("ddpo-nonfinite-resume");
        try
        {
            var config = TinyTraining.Config("num_epochs=1");
            var run = Path.Combine(root, "run");
            TinyTraining.Train(config, run);
            // A copy of the run folder whose checkpoint gets a NaN by hand.
            var copy = Path.Combine(root, "copy");
            foreach (var file in Directory.GetFiles(run, "*", SearchOption.AllDirectories))
            {
                var target = Path.Combine(copy, Path.GetRelativePath(run, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
            var tensorsFile = Path.Combine(copy, "checkpoints", RunFolder.CheckpointFolderName(0), RunFolder.CheckpointTensorsFileName);
            var tensors = SafetensorsFile.Load(tensorsFile);
            using (var flat = tensors["param.0001"].view(-1))
            using (var first = flat[0])
            {
                first.fill_(float.NaN);
            }
            SafetensorsFile.SaveAtomic(tensorsFile, tensors);
            foreach (var t in tensors.Values) t.Dispose();

            var more = TinyTraining.Config("num_epochs=2");
            var e = Assert.Throws<ModelLoadException>(() => TinyTraining.Train(more, copy, resume: true));
            Assert.Contains(tensorsFile, e.Message);
            Assert.Contains("tensor 'param.0001' has non-finite values", e.Message);
            // The CLI reports it as bad input, not a crash.
            var (code, output) = CliTests.Capture(() => CliApp.Run(TrainArgs(copy, 2, "--resume")));
            Assert.Equal(CliApp.BadInput, code);
            Assert.Contains("param.0001", output);
            // The original run resumes.
            Assert.Equal(2, TinyTraining.Train(more, run, resume: true).Count);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    private static string Squeeze(string text) => System.Text.RegularExpressions.Regex.Replace(text, @"\s+", "");

    private static byte[] OptimizerBytes(OptimizerHelper optimizer)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            optimizer.save_state_dict(writer);
        }
        return stream.ToArray();
    }

    private static (Tensor[] Weights, byte[] Optimizer) ReadCheckpoint(string run, int epoch)
    {
        var (_, tensors) = Checkpoint.At(Path.Combine(run, "checkpoints", RunFolder.CheckpointFolderName(epoch))).Load();
        using var optimizer = tensors["optimizer.state"];
        var weights = tensors.Where(kv => kv.Key.StartsWith("param.", StringComparison.Ordinal)).OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => kv.Value).ToArray();
        return (weights, optimizer.data<byte>().ToArray());
    }

    private sealed class Messages(List<string> messages) : ITrainingObserver
    {
        public void PhaseStarted(int epoch, string phase, int total) { }
        public void PhaseProgress(string phase, int done) { }
        public void EpochFinished(EpochMetrics metrics) { }
        public void Message(string text) => messages.Add(text);
    }
}
