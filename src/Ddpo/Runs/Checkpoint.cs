using System.Globalization;
using Ddpo.Models.Loading;
using Ddpo.Runtime;
using static TorchSharp.torch;

namespace Ddpo.Runs;

/// <summary>A tensor about to be written into a checkpoint is not finite: the checkpoint is refused (nothing is written).</summary>
public sealed class NonFiniteTensorException(string message) : Exception(message);

/// <summary>
/// One checkpoint of a run, the folder <c>RUN/checkpoints/epoch-000010/</c> (<see cref="RunFolder.CheckpointDir"/>) closing
/// <see cref="Epoch"/>: <c>tensors.safetensors</c> (named tensors: trainable weights and optimiser state),
/// <c>state.json</c> (<see cref="TrainingState"/>) and what the writer adds (the exported weights). Each is built in a
/// temporary folder and renamed into place, so a crash never leaves a half-written checkpoint under a final name;
/// only the newest ones up to the keep limit are kept. A checkpoint with a non-finite tensor is never written (and so
/// the newest good one is never pruned for it), and one found on disk is refused when loaded.
/// </summary>
/// <param name="Epoch">The epoch the checkpoint closes.</param>
/// <param name="Path">The checkpoint folder.</param>
internal sealed record Checkpoint(int Epoch, string Path)
{
    // The folders of versions that wrote checkpoints themselves, before AtomicFile.
    private const string OldTempPrefix = ".tmp-";

    /// <summary>The checkpoint's <c>state.json</c>.</summary>
    public string StateFile => System.IO.Path.Combine(Path, RunFolder.CheckpointStateFileName);

    /// <summary>The checkpoint's <c>tensors.safetensors</c>.</summary>
    public string TensorsFile => System.IO.Path.Combine(Path, RunFolder.CheckpointTensorsFileName);

    /// <summary>
    /// Writes a checkpoint of <paramref name="run"/> for <see cref="TrainingState.Epoch"/> atomically (replacing one of
    /// the same epoch): the tensors, the state, and whatever <paramref name="writeExtra"/> writes into the (temporary)
    /// folder it is given; then deletes the oldest beyond <paramref name="keepLimit"/>. Tensors are copied to the CPU;
    /// the caller keeps ownership. A floating-point tensor with a NaN or infinite value is refused
    /// (<see cref="NonFiniteTensorException"/>, naming it) before anything is written or pruned.
    /// </summary>
    public static Checkpoint Save(RunFolder run, TrainingState state, IReadOnlyDictionary<string, Tensor> tensors, int keepLimit,
        Action<string>? writeExtra = null)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentOutOfRangeException.ThrowIfNegative(state.Epoch);
        ArgumentOutOfRangeException.ThrowIfLessThan(keepLimit, 1);
        Directory.CreateDirectory(run.CheckpointsDir);
        RemoveStaleTemporaries(run.CheckpointsDir);
        var final = run.CheckpointDir(state.Epoch);
        if (FirstNonFinite(tensors) is { } bad)
        {
            throw new NonFiniteTensorException($"{final}: refusing to write a checkpoint whose tensor '{bad}' has non-finite values (NaN/inf); " +
                "the newest checkpoint already in the run folder is kept");
        }
        AtomicFile.WriteFolder(final, temp =>
        {
            SafetensorsFile.SaveAtomic(System.IO.Path.Combine(temp, RunFolder.CheckpointTensorsFileName), tensors.ToDictionary(kv => kv.Key, kv => kv.Value));
            File.WriteAllText(System.IO.Path.Combine(temp, RunFolder.CheckpointStateFileName), state.ToJson());
            writeExtra?.Invoke(temp);
        });
        Prune(run, keepLimit);
        return new Checkpoint(state.Epoch, final);
    }

    /// <summary>The complete checkpoints of <paramref name="run"/> (those with both files), oldest first.</summary>
    public static IReadOnlyList<Checkpoint> List(RunFolder run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (!Directory.Exists(run.CheckpointsDir)) return [];
        var result = new List<Checkpoint>();
        foreach (var dir in Directory.GetDirectories(run.CheckpointsDir))
        {
            var name = System.IO.Path.GetFileName(dir);
            if (!name.StartsWith(RunFolder.EpochFolderPrefix, StringComparison.Ordinal)) continue;
            if (!int.TryParse(name.AsSpan(RunFolder.EpochFolderPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var epoch)) continue;
            var checkpoint = new Checkpoint(epoch, dir);
            if (!File.Exists(checkpoint.StateFile) || !File.Exists(checkpoint.TensorsFile)) continue;
            result.Add(checkpoint);
        }
        return result.OrderBy(c => c.Epoch).ToList();
    }

    /// <summary>The newest complete checkpoint of <paramref name="run"/>, or null when there is none.</summary>
    public static Checkpoint? Latest(RunFolder run) => List(run).LastOrDefault();

    /// <summary>The checkpoint folder <paramref name="directory"/>, whatever it holds (<see cref="Load"/> checks; the epoch is read from its state).</summary>
    public static Checkpoint At(string directory) => new(-1, System.IO.Path.GetFullPath(directory));

    /// <summary>Reads the checkpoint's state and tensors (on the CPU; the caller disposes them).</summary>
    public (TrainingState State, Dictionary<string, Tensor> Tensors) Load()
    {
        var statePath = StateFile;
        if (!File.Exists(statePath))
        {
            throw new ModelLoadException($"{Path}: not a checkpoint (no {RunFolder.CheckpointStateFileName})");
        }
        TrainingState state;
        try
        {
            state = TrainingState.FromJson(Utf8Text.ReadFile(statePath, message => new FormatException(message)), statePath);
        }
        catch (FormatException e)
        {
            throw new ModelLoadException(e.Message, e);
        }
        if (state.Epoch < 0)
        {
            throw new ModelLoadException($"{statePath}: field 'epoch' is {state.Epoch}, expected a non-negative integer");
        }
        var tensorsPath = TensorsFile;
        var tensors = SafetensorsFile.Load(tensorsPath);
        if (FirstNonFinite(tensors) is { } bad)
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw new ModelLoadException($"{tensorsPath}: tensor '{bad}' has non-finite values (NaN/inf); this checkpoint cannot be resumed from. " +
                "Move its folder out of checkpoints/ to resume from the previous one, or start the run again");
        }
        return (state, tensors);
    }

    /// <summary>
    /// The name of the first floating-point tensor of <paramref name="tensors"/> (in name order) with a NaN or infinite
    /// value, or null when all are finite: one fused check, and a search only when it fails.
    /// </summary>
    public static string? FirstNonFinite(IReadOnlyDictionary<string, Tensor> tensors)
    {
        var floats = tensors.Where(kv => is_floating_point(kv.Value)).OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        if (floats.Count == 0) return null;
        using (NewDisposeScope())
        using (no_grad())
        {
            var flags = floats.Select(kv => kv.Value.isfinite().all()).ToList();
            var device = flags[0].device;
            var all = flags.Count == 1 ? flags[0] : stack(flags.Select(f => f.to(device)).ToList()).all();
            if (all.item<bool>()) return null;
        }
        foreach (var (name, t) in floats)
        {
            using var finite = t.isfinite().all();
            if (!finite.item<bool>()) return name;
        }
        return null;
    }

    private static void Prune(RunFolder run, int keepLimit)
    {
        var all = List(run);
        foreach (var old in all.Take(Math.Max(0, all.Count - keepLimit)))
        {
            Directory.Delete(old.Path, recursive: true);
        }
    }

    private static void RemoveStaleTemporaries(string root)
    {
        // AtomicFile's temporaries, and the ".tmp-" folders of versions that wrote checkpoints themselves.
        foreach (var dir in Directory.GetDirectories(root).Where(d => System.IO.Path.GetFileName(d) is var n && (AtomicFile.IsTemporary(n) || n.StartsWith(OldTempPrefix, StringComparison.Ordinal))))
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { /* another writer's folder in use; leave it */ }
        }
    }
}
