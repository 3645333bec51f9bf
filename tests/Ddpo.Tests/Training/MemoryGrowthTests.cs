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

/// <summary>
/// Runs alone: <see cref="Tensor.TotalCount"/> counts the tensors of the whole process, so tests running in parallel
/// would change it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "alone";
}

[Collection(AloneCollection.Name)]
public sealed class MemoryGrowthTests(ITestOutputHelper output)
{
    /// <summary>Every tensor made per step or per epoch is disposed: sampling, rewards, the update, checkpoints, images, report.</summary>
    [Fact]
    public async Task LiveTensorCountDoesNotGrowFromEpochToEpoch()
    {
        var config = DdpoConfig.Load(null, "compressibility",
        [
            "prompt_fn=\"simple_animals\"", "sample.num_steps=3", "sample.batch_size=4", "sample.num_batches_per_epoch=2",
            "train.batch_size=2", "train.gradient_accumulation_steps=2", "num_epochs=4", "pretrained.dtype=\"fp32\"",
            "logging.num_eval_images=2", "save_freq=2", "device=\"cpu\"", "watch_rewards=\"image_contrast\"",
        ]);
        var dir = TestPaths.NewTempDir();
        var counts = new List<long>();
        using (var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel))
        using (var trainer = new DdpoTrainer(config, pipeline.Policy, dir, false, RewardFactory.CreateForTraining(config), new CountingObserver(counts)))
        {
            await trainer.RunAsync();
        }
        output.WriteLine("live tensors after each epoch: " + string.Join(", ", counts));
        Assert.Equal(4, counts.Count);
        // Epoch 0 creates long-lived state (the optimizer's moments); after it nothing may accumulate. The count can
        // only fall otherwise (.NET's finalizers release tensors leaked while the model was built), so a leak of
        // even one tensor per epoch shows as a rise between two consecutive epochs.
        for (int e = 2; e < counts.Count; e++)
        {
            Assert.True(counts[e] <= counts[e - 1], $"live tensors grew from epoch {e - 1} to {e}: {string.Join(", ", counts)}");
        }
        Directory.Delete(dir, true);
    }

    /// <summary>The per-epoch heap trim reaches glibc here (Linux): freed libtorch memory goes back to the system.</summary>
    [Fact]
    public void FreedNativeMemoryIsReturnedToTheSystem()
    {
        Assert.True(Ddpo.Runtime.NativeHeap.Trim(), "malloc_trim was not found in libc.so.6");
        Assert.True(Ddpo.Runtime.NativeHeap.ReturnLargeBlocksToTheSystem(), "mallopt(M_MMAP_THRESHOLD or M_TRIM_THRESHOLD) was refused");
    }

    private sealed class CountingObserver(List<long> counts) : ITrainingObserver
    {
        public void PhaseStarted(int epoch, string phase, int total) { }
        public void PhaseProgress(string phase, int done) { }
        public void EpochFinished(EpochMetrics metrics) => counts.Add(Tensor.TotalCount);
        public void Message(string text) { }
    }
}
