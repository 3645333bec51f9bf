using Ddpo.Models.Loading;
using Ddpo.Runs;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// Saves and restores everything a DDPO run needs to continue exactly, as a <see cref="Checkpoint"/>: the trainable
/// tensors, the optimizer state (TorchSharp's binary form, stored as a byte tensor in the same safetensors file), the
/// loss scaler's scale and growth counter and the stat tracker (in <see cref="TrainingState"/>); beside them the
/// fine-tuned weights in diffusers naming, for other tools.
/// </summary>
internal static class TrainingCheckpoint
{
    /// <summary>The tensor holding the optimizer state's bytes.</summary>
    public const string OptimizerKey = "optimizer.state";

    /// <summary>
    /// Writes a checkpoint of <paramref name="run"/> for the completed <paramref name="epoch"/> after
    /// <paramref name="globalStep"/> optimizer steps, keeping the newest <paramref name="keepLimit"/>, with the
    /// <paramref name="extra"/> copies of the weights (the EMA, DiffusionNFT's old policy) under their key prefixes.
    /// <paramref name="export"/> (default: the weights' <see cref="TrainableWeights.Export"/>) writes the exported file.
    /// </summary>
    public static Checkpoint Save(RunFolder run, int keepLimit, int epoch, long globalStep, TrainableWeights weights,
        OptimizerHelper optimizer, LossScaler scaler, string? statTrackerJson, string configHash,
        IReadOnlyList<(string Prefix, ParameterCopy Copy)>? extra = null, Action<string>? export = null)
    {
        var tensors = weights.RawState();
        foreach (var (prefix, copy) in extra ?? []) copy.AddTo(tensors, prefix);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            optimizer.save_state_dict(writer);
        }
        using var optimizerBytes = tensor(stream.ToArray());
        tensors[OptimizerKey] = optimizerBytes;
        var state = new TrainingState { Epoch = epoch, GlobalStep = globalStep, ConfigHash = configHash, StatTrackerJson = statTrackerJson };
        scaler.SaveTo(state);
        return Checkpoint.Save(run, state, tensors, keepLimit, folder => (export ?? weights.Export)(Path.Combine(folder, weights.ExportFileName)));
    }

    /// <summary>Loads <paramref name="checkpoint"/> into the weights, the <paramref name="extra"/> copies, the optimizer and the loss scaler; returns its state.</summary>
    public static TrainingState Restore(Checkpoint checkpoint, TrainableWeights weights, OptimizerHelper optimizer, LossScaler scaler,
        IReadOnlyList<(string Prefix, ParameterCopy Copy)>? extra = null)
    {
        var (state, tensors) = checkpoint.Load();
        try
        {
            weights.LoadRawState(tensors, checkpoint.Path);
            foreach (var (prefix, copy) in extra ?? []) copy.Load(tensors, prefix, checkpoint.Path);
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
            scaler.LoadFrom(state, checkpoint.StateFile);
            return state;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
