using System.Globalization;
using Ddpo.Models.Loading;
using Ddpo.Runtime;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>A checkpoint folder and the epoch it closes.</summary>
internal sealed record CheckpointInfo(int Epoch, string Path);

/// <summary>
/// Checkpoints of a run under <c>RUN/checkpoints/epoch-000010/</c>: <c>tensors.safetensors</c> (named tensors:
/// trainable weights and optimiser state) and <c>state.json</c> (<see cref="CheckpointState"/>). Each is built in a
/// temporary folder and renamed into place, so a crash never leaves a half-written checkpoint under a final name;
/// only the newest <see cref="KeepLimit"/> are kept. A checkpoint with a non-finite tensor is never written (and so the
/// newest good one is never pruned for it), and one found on disk is refused when loaded.
/// </summary>
internal sealed class CheckpointStore
{
    /// <summary>The tensor file inside a checkpoint folder.</summary>
    public const string TensorsFile = "tensors.safetensors";

    /// <summary>The state file inside a checkpoint folder.</summary>
    public const string StateFile = "state.json";

    private const string Prefix = "epoch-";
    private const string TempPrefix = ".tmp-";

    /// <summary>A store under <c><paramref name="runDirectory"/>/checkpoints</c> keeping the newest <paramref name="keepLimit"/>.</summary>
    public CheckpointStore(string runDirectory, int keepLimit)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keepLimit, 1);
        Root = Path.Combine(runDirectory, "checkpoints");
        KeepLimit = keepLimit;
    }

    /// <summary>The <c>checkpoints</c> folder.</summary>
    public string Root { get; }

    /// <summary>How many checkpoints are kept.</summary>
    public int KeepLimit { get; }

    /// <summary>The folder name of an epoch's checkpoint (<c>epoch-000010</c>).</summary>
    public static string FolderName(int epoch) => Prefix + epoch.ToString("D6", CultureInfo.InvariantCulture);

    /// <summary>
    /// Writes a checkpoint for <see cref="CheckpointState.Epoch"/> atomically (replacing one of the same epoch),
    /// then deletes the oldest beyond <see cref="KeepLimit"/>. Tensors are copied to the CPU; the caller keeps ownership.
    /// A floating-point tensor with a NaN or infinite value is refused (<see cref="NonFiniteTensorException"/>, naming
    /// it) before anything is written or pruned.
    /// </summary>
    public CheckpointInfo Save(CheckpointState state, IReadOnlyDictionary<string, Tensor> tensors)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(state.Epoch);
        Directory.CreateDirectory(Root);
        RemoveStaleTemporaries();
        var final = Path.Combine(Root, FolderName(state.Epoch));
        if (FirstNonFinite(tensors) is { } bad)
        {
            throw new NonFiniteTensorException($"{final}: refusing to write a checkpoint whose tensor '{bad}' has non-finite values (NaN/inf); " +
                "the newest checkpoint already in the run folder is kept");
        }
        AtomicFile.WriteFolder(final, temp =>
        {
            SafetensorsFile.SaveAtomic(Path.Combine(temp, TensorsFile), tensors.ToDictionary(kv => kv.Key, kv => kv.Value));
            File.WriteAllText(Path.Combine(temp, StateFile), state.ToJson());
        });
        Prune();
        return new CheckpointInfo(state.Epoch, final);
    }

    /// <summary>Complete checkpoints (those with both files), oldest first.</summary>
    public IReadOnlyList<CheckpointInfo> List()
    {
        if (!Directory.Exists(Root)) return [];
        var result = new List<CheckpointInfo>();
        foreach (var dir in Directory.GetDirectories(Root))
        {
            var name = Path.GetFileName(dir);
            if (!name.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            if (!int.TryParse(name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var epoch)) continue;
            if (!File.Exists(Path.Combine(dir, StateFile)) || !File.Exists(Path.Combine(dir, TensorsFile))) continue;
            result.Add(new CheckpointInfo(epoch, dir));
        }
        return result.OrderBy(c => c.Epoch).ToList();
    }

    /// <summary>The newest complete checkpoint, or null when there is none.</summary>
    public CheckpointInfo? Latest() => List().LastOrDefault();

    /// <summary>Reads a checkpoint folder's state and tensors (on the CPU; the caller disposes them).</summary>
    public static (CheckpointState State, Dictionary<string, Tensor> Tensors) Load(string checkpointDirectory)
    {
        var statePath = Path.Combine(checkpointDirectory, StateFile);
        if (!File.Exists(statePath))
        {
            throw new ModelLoadException($"{checkpointDirectory}: not a checkpoint (no {StateFile})");
        }
        CheckpointState state;
        try
        {
            state = CheckpointState.FromJson(Utf8Text.ReadFile(statePath, message => new FormatException(message)), statePath);
        }
        catch (FormatException e)
        {
            throw new ModelLoadException(e.Message, e);
        }
        if (state.Epoch < 0)
        {
            throw new ModelLoadException($"{statePath}: field 'epoch' is {state.Epoch}, expected a non-negative integer");
        }
        var tensorsPath = Path.Combine(checkpointDirectory, TensorsFile);
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
        using (var all = NonFiniteGuard.AllFinite(floats.Select(kv => kv.Value)))
        {
            if (all is null || all.item<bool>()) return null;
        }
        foreach (var (name, t) in floats)
        {
            using var finite = t.isfinite().all();
            if (!finite.item<bool>()) return name;
        }
        return null;
    }

    private void Prune()
    {
        var all = List();
        foreach (var old in all.Take(Math.Max(0, all.Count - KeepLimit)))
        {
            Directory.Delete(old.Path, recursive: true);
        }
    }

    private void RemoveStaleTemporaries()
    {
        // AtomicFile's temporaries, and the ".tmp-" folders of versions that wrote checkpoints themselves.
        foreach (var dir in Directory.GetDirectories(Root).Where(d => Path.GetFileName(d) is var n && (AtomicFile.IsTemporary(n) || n.StartsWith(TempPrefix, StringComparison.Ordinal))))
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { /* another writer's folder in use; leave it */ }
        }
    }
}
