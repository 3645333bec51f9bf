using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>What a training checkpoint restores besides the tensors.</summary>
/// <param name="Epoch">The last completed epoch.</param>
/// <param name="ConfigHash">Hash of the configuration the checkpoint was made with.</param>
/// <param name="StatTracker">The per-prompt stat tracker's JSON, or null.</param>
public sealed record RestoredState(int Epoch, string ConfigHash, string? StatTracker);

/// <summary>
/// Saves and restores everything a DDPO run needs to continue exactly: the trainable tensors, the
/// optimizer state (TorchSharp's binary form, stored as a byte tensor in the same safetensors file),
/// the loss scaler's scale and growth counter (in <c>state.json</c>'s extras) and the stat tracker. Folders are written atomically by <see cref="CheckpointStore"/>.
/// </summary>
public sealed class TrainingCheckpoints(RunDirectory run, int keepLimit)
{
    private const string OptimizerKey = "optimizer.state";
    private readonly CheckpointStore _store = new(run.Root, keepLimit);

    /// <summary>The newest checkpoint, or null.</summary>
    public CheckpointInfo? Latest() => _store.Latest();

    /// <summary>Writes a checkpoint for the completed <paramref name="epoch"/>; returns its folder.</summary>
    public string Save(int epoch, TrainableWeights weights, OptimizerHelper optimizer, LossScaler scaler, string? statTrackerJson, string configHash)
    {
        var tensors = weights.RawState();
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            optimizer.save_state_dict(writer);
        }
        using var optimizerBytes = tensor(stream.ToArray());
        tensors[OptimizerKey] = optimizerBytes;
        var state = new CheckpointState { Epoch = epoch, ConfigHash = configHash, StatTrackerJson = statTrackerJson };
        scaler.SaveTo(state.Extra);
        var path = _store.Save(state, tensors).Path;
        // Beside the exact-resume tensors, the fine-tuned weights in diffusers naming for other tools.
        weights.Export(Path.Combine(path, weights.ExportFileName));
        return path;
    }

    /// <summary>Loads <paramref name="checkpoint"/> into the weights, the optimizer and the loss scaler.</summary>
    public RestoredState Restore(CheckpointInfo checkpoint, TrainableWeights weights, OptimizerHelper optimizer, LossScaler scaler)
    {
        var (state, tensors) = CheckpointStore.Load(checkpoint.Path);
        try
        {
            weights.LoadRawState(tensors, checkpoint.Path);
            if (!tensors.TryGetValue(OptimizerKey, out var bytes))
            {
                throw new InvalidDataException($"{checkpoint.Path}: checkpoint has no optimizer state ('{OptimizerKey}')");
            }
            using var stream = new MemoryStream(bytes.data<byte>().ToArray());
            using var reader = new BinaryReader(stream);
            optimizer.load_state_dict(reader);
            scaler.LoadFrom(state.Extra, Path.Combine(checkpoint.Path, CheckpointStore.StateFile));
            return new RestoredState(state.Epoch, state.ConfigHash, state.StatTrackerJson);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
