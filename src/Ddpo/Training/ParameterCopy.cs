using Ddpo.Models.Loading;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// A second set of values for the trainable parameters (an EMA, DiffusionNFT's old policy): tensors of the same shapes,
/// dtypes and device, owned here (outside any dispose scope), which can be swapped into the parameters for a while
/// (<see cref="Applied"/>: bit-exact restore) and saved in checkpoints under a key prefix.
/// </summary>
internal sealed class ParameterCopy : IDisposable
{
    private readonly Tensor[] _values;

    /// <summary>A copy of <paramref name="parameters"/> as they are now.</summary>
    public ParameterCopy(IReadOnlyList<Parameter> parameters)
    {
        using var _ = no_grad();
        _values = parameters.Select(p =>
        {
            var v = p.detach().clone();
            v.DetachFromDisposeScope();
            return v;
        }).ToArray();
    }

    /// <summary>The values, in the parameters' order.</summary>
    public IReadOnlyList<Tensor> Values => _values;

    /// <summary>
    /// Puts these values into <paramref name="parameters"/> until the result is disposed, which puts the parameters'
    /// own values back exactly (for sampling or exporting with them; no gradient may be pending meanwhile).
    /// </summary>
    public IDisposable Applied(IReadOnlyList<Parameter> parameters)
    {
        Check(parameters);
        using var _ = no_grad();
        var saved = new Tensor[parameters.Count];
        for (int i = 0; i < parameters.Count; i++)
        {
            saved[i] = parameters[i].detach().clone();
            saved[i].DetachFromDisposeScope();
            parameters[i].copy_(_values[i]);
        }
        return new Restore(parameters, saved);
    }

    /// <summary>Adds the values to <paramref name="tensors"/> as <c>PREFIX.0000</c>, ... (checkpoints).</summary>
    public void AddTo(Dictionary<string, Tensor> tensors, string prefix)
    {
        for (int i = 0; i < _values.Length; i++) tensors[$"{prefix}.{i:D4}"] = _values[i];
    }

    /// <summary>Loads values saved by <see cref="AddTo"/>; a missing or mis-shaped tensor is an error naming <paramref name="source"/>.</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> tensors, string prefix, string source)
    {
        using var _ = no_grad();
        for (int i = 0; i < _values.Length; i++)
        {
            var key = $"{prefix}.{i:D4}";
            if (!tensors.TryGetValue(key, out var value))
            {
                throw new ModelLoadException($"{source}: checkpoint lacks tensor '{key}' ({_values.Length} expected; was it made with other train.ema / algorithm settings?)");
            }
            if (!value.shape.SequenceEqual(_values[i].shape))
            {
                throw new ModelLoadException($"{source}: tensor '{key}' has shape [{string.Join(", ", value.shape)}], expected [{string.Join(", ", _values[i].shape)}]");
            }
            _values[i].copy_(value);
        }
    }

    private void Check(IReadOnlyList<Parameter> parameters)
    {
        if (parameters.Count != _values.Length) throw new ArgumentException($"{parameters.Count} parameters for a copy of {_values.Length}");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var v in _values) v.Dispose();
    }

    private sealed class Restore(IReadOnlyList<Parameter> parameters, Tensor[] saved) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            using var _ = no_grad();
            for (int i = 0; i < saved.Length; i++)
            {
                parameters[i].copy_(saved[i]);
                saved[i].Dispose();
            }
        }
    }
}
