using Ddpo.Models.Loading;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>What a training checkpoint restores besides the tensors.</summary>
/// <param name="Epoch">The last completed epoch.</param>
/// <param name="ConfigHash">Hash of the configuration the checkpoint was made with.</param>
/// <param name="StatTracker">The per-prompt stat tracker's JSON, or null.</param>
/// <param name="GlobalStep">Optimizer steps taken up to and including <paramref name="Epoch"/>.</param>
internal sealed record RestoredState(int Epoch, string ConfigHash, string? StatTracker, long GlobalStep);

/// <summary>
/// Saves and restores everything a DDPO run needs to continue exactly: the trainable tensors, the
/// optimizer state (TorchSharp's binary form, stored as a byte tensor in the same safetensors file),
/// the loss scaler's scale and growth counter (in <c>state.json</c>'s extras) and the stat tracker. Folders are written atomically by <see cref="CheckpointStore"/>.
/// </summary>
internal sealed class TrainingCheckpoints(RunDirectory run, int keepLimit)
{
    private const string OptimizerKey = "optimizer.state";
    private readonly CheckpointStore _store = new(run.Root, keepLimit);

    /// <summary>The newest checkpoint, or null.</summary>
    public CheckpointInfo? Latest() => _store.Latest();

    /// <summary>Writes a checkpoint for the completed <paramref name="epoch"/> after <paramref name="globalStep"/> optimizer steps; returns its folder.</summary>
    public string Save(int epoch, long globalStep, TrainableWeights weights, OptimizerHelper optimizer, LossScaler scaler, string? statTrackerJson, string configHash)
    {
        var tensors = weights.RawState();
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            optimizer.save_state_dict(writer);
        }
        using var optimizerBytes = tensor(stream.ToArray());
        tensors[OptimizerKey] = optimizerBytes;
        var state = new CheckpointState { Epoch = epoch, GlobalStep = globalStep, ConfigHash = configHash, StatTrackerJson = statTrackerJson };
        scaler.SaveTo(state);
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
                throw new ModelLoadException($"{checkpoint.Path}: checkpoint has no optimizer state ('{OptimizerKey}')");
            }
            if (bytes.dtype != ScalarType.Byte || bytes.dim() != 1)
            {
                throw new ModelLoadException($"{checkpoint.Path}: '{OptimizerKey}' is a {bytes.dtype} tensor of shape [{string.Join(", ", bytes.shape)}], expected a 1-D U8 tensor of bytes");
            }
            using var stream = new MemoryStream(bytes.data<byte>().ToArray());
            using var reader = new BinaryReader(stream);
            try
            {
                optimizer.load_state_dict(reader);
            }
            // TorchSharp reads the optimizer's binary form without checks of its own: garbage ends the stream
            // early, has impossible lengths or does not fit the parameters.
            catch (Exception e) when (e is EndOfStreamException or IOException or ArgumentException or InvalidOperationException
                or InvalidDataException or FormatException or OverflowException or OutOfMemoryException or IndexOutOfRangeException
                or System.Runtime.InteropServices.ExternalException)
            {
                throw new ModelLoadException($"{checkpoint.Path}: the optimizer state ('{OptimizerKey}') is unreadable ({e.GetType().Name}: {e.Message}); the checkpoint is corrupt or from another optimizer", e);
            }
            scaler.LoadFrom(state, Path.Combine(checkpoint.Path, CheckpointStore.StateFile));
            return new RestoredState(state.Epoch, state.ConfigHash, state.StatTrackerJson, state.GlobalStep);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
