using Ddpo.Models.Loading;
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

    private static CheckpointState State(int epoch, PerPromptStatTracker tracker) => new()
    {
        Epoch = epoch,
        GlobalStep = epoch * 4L,
        ConfigHash = "abc123",
        StatTrackerJson = tracker.ToJson(),
    };

    [Fact]
    public void SaveKeepsTheNewestAndRoundTripsState()
    {
        var store = new CheckpointStore(_run, keepLimit: 2);
        Assert.Null(store.Latest());
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
            var info = store.Save(State(epoch, tracker), tensors);
            Assert.Equal(Path.Combine(_run, "checkpoints", CheckpointStore.FolderName(epoch)), info.Path);
        }
        Assert.Equal([2, 3], store.List().Select(c => c.Epoch));
        Assert.Equal("epoch-000003", Path.GetFileName(store.Latest()!.Path));
        Assert.Empty(Directory.GetDirectories(store.Root, ".tmp-*"));

        var (state, loaded) = CheckpointStore.Load(store.Latest()!.Path);
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
        var store = new CheckpointStore(_run, keepLimit: 5);
        using var scope = NewDisposeScope();
        var weights = new Dictionary<string, Tensor> { ["w"] = ones(3) };
        store.Save(new CheckpointState { Epoch = 4 }, weights);

        // A crash mid-write leaves only a temporary folder; a folder without state.json is not a checkpoint.
        Directory.CreateDirectory(Path.Combine(store.Root, ".tmp-epoch-000009-dead"));
        Directory.CreateDirectory(Path.Combine(store.Root, "epoch-000008"));
        File.WriteAllText(Path.Combine(store.Root, "epoch-000008", CheckpointStore.TensorsFile), "partial");
        Assert.Equal(4, store.Latest()!.Epoch);

        // A save that fails (a disposed tensor) leaves no checkpoint folder and no temporary behind.
        var dead = ones(2);
        dead.Dispose();
        Assert.ThrowsAny<Exception>(() => store.Save(new CheckpointState { Epoch = 5 }, new Dictionary<string, Tensor> { ["w"] = dead }));
        Assert.False(Directory.Exists(Path.Combine(store.Root, "epoch-000005")));
        Assert.Equal(4, store.Latest()!.Epoch);
        Assert.Empty(Directory.GetDirectories(store.Root, ".tmp-*"));

        // Saving the same epoch again replaces it.
        store.Save(new CheckpointState { Epoch = 4, GlobalStep = 77 }, weights);
        Assert.Equal(77, CheckpointStore.Load(store.Latest()!.Path).State.GlobalStep);
        Assert.Throws<ModelLoadException>(() => CheckpointStore.Load(Path.Combine(store.Root, "epoch-000008")));
    }

    [Fact]
    public void MetricsLinesAreFlushedAndParse()
    {
        using (var writer = new MetricsWriter(_run))
        {
            writer.Write(new Dictionary<string, object?> { ["epoch"] = 0, ["reward_mean"] = -12.5f, ["prompt"] = "a cat" });
            writer.Write(new Dictionary<string, object?> { ["epoch"] = 1, ["loss"] = double.NaN, ["rewards"] = new[] { 1.0, 2.0 }, ["ok"] = true, ["extra"] = null });
            // Readable while the writer is still open: each line is flushed.
            var early = MetricsReader.ReadAll(writer.Path);
            Assert.Equal(2, early.Count);
        }
        using (var again = new MetricsWriter(_run))
        {
            again.Write(new Dictionary<string, object?> { ["epoch"] = 2, ["stats"] = new Dictionary<string, object?> { ["a cat"] = 0.25 } });
        }
        var path = Path.Combine(_run, MetricsWriter.FileName);
        Assert.Equal(3, File.ReadAllLines(path).Length);
        var lines = MetricsReader.ReadAll(path);
        Assert.Equal(0.0, lines[0]["epoch"]);
        Assert.Equal(-12.5, lines[0]["reward_mean"]);
        Assert.Equal("a cat", lines[0]["prompt"]);
        Assert.True(double.IsNaN((double)lines[1]["loss"]!));
        Assert.Equal(new List<object?> { 1.0, 2.0 }, lines[1]["rewards"]);
        Assert.Equal(true, lines[1]["ok"]);
        Assert.Null(lines[1]["extra"]);
        Assert.Equal(0.25, ((Dictionary<string, object?>)lines[2]["stats"]!)["a cat"]);

        File.AppendAllText(path, "{not json\n");
        var e = Assert.Throws<FormatException>(() => MetricsReader.ReadAll(path));
        Assert.Contains(":4:", e.Message);
    }
}
