using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Runs;
using Ddpo.Tests.Models;
using Ddpo.Tests.Support;
using Ddpo.Training;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

/// <summary>
/// A training checkpoint (LoRA on the tiny UNet fixture, AdamW after one step) whose tensors are damaged: restoring
/// it is a <see cref="ModelLoadException"/> naming the checkpoint, never a TorchSharp or libtorch error.
/// </summary>
public sealed class CorruptCheckpointTests
{
    private const string OptimizerKey = "optimizer.state";

    public static TheoryData<string> Corruptions() => new(
        "optimizer state cut in half", "optimizer state garbage", "optimizer state as F32", "optimizer state removed",
        "trainable tensor removed", "trainable tensor mis-shaped");

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void RestoringADamagedCheckpointGivesANamedError(string corruption)
    {
        var root = TestPaths.NewTempDir("ddpo-corrupt-ckpt");
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
        try
        {
            var weights = TrainableWeights.WithLora(unet, 2, 2, seed: 5);
            using var optimizer = optim.AdamW(weights.Parameters, 1e-3);
            using (var scope = NewDisposeScope())
            {
                optimizer.zero_grad();
                var loss = weights.Parameters.Select(p => (p * p).sum()).Aggregate((a, b) => a + b);
                loss.backward();
                optimizer.step();
            }
            var run = new RunFolder(root);
            var path = TrainingCheckpoint.Save(run, 2, 0, 1, weights, optimizer, new LossScaler(enabled: false), null, "hash").Path;
            var file = Path.Combine(path, RunFolder.CheckpointTensorsFileName);
            Damage(file, corruption);

            var e = Assert.Throws<ModelLoadException>(() => TrainingCheckpoint.Restore(Checkpoint.Latest(run)!, weights, optimizer, new LossScaler(enabled: false)));
            Assert.Contains(path, e.Message);
            Assert.Contains(corruption switch
            {
                "optimizer state as F32" => "expected a 1-D U8 tensor",
                "optimizer state removed" => "no optimizer state",
                "trainable tensor removed" => "lacks trainable tensor 'param.0000'",
                "trainable tensor mis-shaped" => "tensor 'param.0001' has shape [1, 2]",
                _ => "the optimizer state ('optimizer.state') is unreadable",
            }, e.Message);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    private static void Damage(string file, string corruption)
    {
        var tensors = SafetensorsFile.Load(file);
        try
        {
            void Set(string key, Tensor? value)
            {
                tensors[key].Dispose();
                tensors.Remove(key);
                if (value is not null) tensors[key] = value;
            }
            var bytes = tensors[OptimizerKey].data<byte>().ToArray();
            switch (corruption)
            {
                case "optimizer state cut in half":
                    Set(OptimizerKey, tensor(bytes[..(bytes.Length / 2)]));
                    break;
                case "optimizer state garbage":
                    var garbage = new byte[bytes.Length];
                    new Random(7).NextBytes(garbage);
                    Set(OptimizerKey, tensor(garbage));
                    break;
                case "optimizer state as F32":
                    Set(OptimizerKey, zeros(bytes.Length / 4));
                    break;
                case "optimizer state removed":
                    Set(OptimizerKey, null);
                    break;
                case "trainable tensor removed":
                    Set("param.0000", null);
                    break;
                case "trainable tensor mis-shaped":
                    Set("param.0001", zeros(1, 2));
                    break;
                default:
                    throw new ArgumentException(corruption);
            }
            SafetensorsFile.SaveAtomic(file, tensors);
        }
        finally
        {
            StateDictLoader.DisposeAll(tensors);
        }
    }
}
