using System.Text.Json;
using Ddpo.Models.Loading;
using Ddpo.Runs;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

public sealed class CheckpointAndMetricsTests : IDisposable
{
    private readonly string _run = TestPaths.NewTempDir("ddpo-run");

    public void Dispose() => Directory.Delete(_run, recursive: true);

    private static TrainingState State(int epoch, PerPromptStatTracker tracker) => new()
    {
        Epoch = epoch,
        GlobalStep = epoch * 4L,
        ConfigHash = "abc123",
        StatTrackerJson = tracker.ToJson(),
    };

    [Fact]
    public void SaveKeepsTheNewestAndRoundTripsState()
    {
        var run = new RunFolder(_run);
        const int keepLimit = 2;
        Assert.Null(Checkpoint.Latest(run));
        var tracker = new PerPromptStatTracker(8, 2);
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        Dictionary<string, Tensor> tensors = new()
        {
            ["unet.lora.down.weight"] = randn(new long[] { 4, 8 }, generator: gen),
            ["optimizer.exp_avg.0"] = randn(new long[] { 4, 8 }, generator: gen),
            ["optimizer.step"] = tensor(new long[] { 12 }),
        };
        foreach (var epoch in new[] { 1, 2, 3 })
        {
            tracker.Update(["a cat", "a dog"], [epoch, -epoch]);
            var info = Checkpoint.Save(run, State(epoch, tracker), tensors, keepLimit);
            Assert.Equal(Path.Combine(_run, "checkpoints", RunFolder.CheckpointFolderName(epoch)), info.Path);
        }
        Assert.Equal([2, 3], Checkpoint.List(run).Select(c => c.Epoch));
        Assert.Equal("epoch-000003", Path.GetFileName(Checkpoint.Latest(run)!.Path));
        Assert.Empty(Directory.GetDirectories(run.CheckpointsDir, ".tmp-*"));

        var (state, loaded) = Checkpoint.At(Checkpoint.Latest(run)!.Path).Load();
        Assert.Equal(3, state.Epoch);
        Assert.Equal(12, state.GlobalStep);
        Assert.Equal("abc123", state.ConfigHash);
        var resumedTracker = PerPromptStatTracker.FromJson(state.StatTrackerJson!);
        Assert.Equal(tracker.Update(["a cat"], [0.5f]), resumedTracker.Update(["a cat"], [0.5f]));
        Assert.Equal(tensors.Keys.Order(), loaded.Keys.Order());
        foreach (var (name, t) in tensors) TensorAssert.Close(t, loaded[name], atol: 0, rtol: 0, what: name);
        foreach (var t in loaded.Values) t.Dispose();
    }

    [Fact]
    public void IncompleteOrFailedCheckpointsAreNeverLatest()
    {
        var run = new RunFolder(_run);
        const int keepLimit = 5;
        using var scope = NewDisposeScope();
        var weights = new Dictionary<string, Tensor> { ["w"] = ones(3) };
        Checkpoint.Save(run, new TrainingState { Epoch = 4 }, weights, keepLimit);

        // A crash mid-write leaves only a temporary folder; a folder without state.json is not a checkpoint.
        Directory.CreateDirectory(Path.Combine(run.CheckpointsDir, ".tmp-epoch-000009-dead"));
        Directory.CreateDirectory(Path.Combine(run.CheckpointsDir, "epoch-000008"));
        File.WriteAllText(Path.Combine(run.CheckpointsDir, "epoch-000008", RunFolder.CheckpointTensorsFileName), "partial");
        Assert.Equal(4, Checkpoint.Latest(run)!.Epoch);

        // A save that fails (a disposed tensor) leaves no checkpoint folder and no temporary behind.
        var dead = ones(2);
        dead.Dispose();
        Assert.ThrowsAny<Exception>(() => Checkpoint.Save(run, new TrainingState { Epoch = 5 }, new Dictionary<string, Tensor> { ["w"] = dead }, keepLimit));
        Assert.False(Directory.Exists(Path.Combine(run.CheckpointsDir, "epoch-000005")));
        Assert.Equal(4, Checkpoint.Latest(run)!.Epoch);
        Assert.Empty(Directory.GetDirectories(run.CheckpointsDir, ".tmp-*"));

        // Saving the same epoch again replaces it.
        Checkpoint.Save(run, new TrainingState { Epoch = 4, GlobalStep = 77 }, weights, keepLimit);
        Assert.Equal(77, Checkpoint.At(Checkpoint.Latest(run)!.Path).Load().State.GlobalStep);
        Assert.Throws<ModelLoadException>(() => Checkpoint.At(Path.Combine(run.CheckpointsDir, "epoch-000008")).Load());
    }

    [Fact]
    public void MetricsLinesAreFlushedAndParse()
    {
        var path = new RunFolder(_run).MetricsFile;
        static Dictionary<string, JsonElement> Other(string json) =>
            JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(json)!;
        using (var log = new MetricsLog(path))
        {
            log.Append(new EpochMetrics { Epoch = 0, RewardMean = -12.5, OtherFields = Other("{\"prompt\": \"a cat\"}") });
            log.Append(new EpochMetrics { Epoch = 1, Loss = double.NaN, OtherFields = Other("{\"rewards\": [1.0, 2.0], \"ok\": true, \"extra\": null}") });
            // Readable while the log is still open: each line is flushed.
            var early = MetricsLog.ReadAll(log.Path);
            Assert.Equal(2, early.Count);
        }
        using (var again = new MetricsLog(path))
        {
            again.Append(new EpochMetrics { Epoch = 2, OtherFields = Other("{\"stats\": {\"a cat\": 0.25}}") });
        }
        Assert.Equal(3, File.ReadAllLines(path).Length);
        var lines = MetricsLog.ReadAll(path);
        Assert.Equal(0, lines[0].Epoch);
        Assert.Equal(-12.5, lines[0].RewardMean);
        Assert.Equal("a cat", lines[0].Values["prompt"]);
        Assert.True(double.IsNaN(lines[1].Loss));
        Assert.True(double.IsNaN(lines[1].ApproxKl)); // not set: NaN
        Assert.Equal(new List<object?> { 1.0, 2.0 }, lines[1].Values["rewards"]);
        Assert.Equal(true, lines[1].Values["ok"]);
        Assert.Null(lines[1].Values["extra"]);
        Assert.Equal(0.25, ((Dictionary<string, object?>)lines[2].Values["stats"]!)["a cat"]);
        Assert.Equal($"{path} record 3", lines[2].Source);

        File.AppendAllText(path, "{not json\n");
        var e = Assert.Throws<FormatException>(() => MetricsLog.ReadAll(path));
        Assert.Contains(":4:", e.Message);
    }
}
