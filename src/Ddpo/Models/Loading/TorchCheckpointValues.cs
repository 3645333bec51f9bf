using static TorchSharp.torch;

namespace Ddpo.Models.Loading;

/// <summary>A Python tuple read from a pickle (immutable; a value, never a call).</summary>
internal sealed class PickleTuple(object?[] items)
{
    /// <summary>The items, in order.</summary>
    public object?[] Items { get; } = items;
}

/// <summary>A Python list read from a pickle.</summary>
internal sealed class PickleList : List<object?>;

/// <summary>
/// A Python dict or <c>collections.OrderedDict</c> read from a pickle: insertion order is kept (state dicts are
/// ordered) and a key set twice keeps its first position and its last value, as in Python.
/// </summary>
internal sealed class PickleDict
{
    private static readonly object NoneKey = new();
    private readonly List<KeyValuePair<object?, object?>> _items = [];
    private readonly Dictionary<object, int> _index = [];

    /// <summary>The entries in insertion order.</summary>
    public IReadOnlyList<KeyValuePair<object?, object?>> Items => _items;

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/>.</summary>
    public void Set(object? key, object? value)
    {
        var k = key ?? NoneKey;
        if (_index.TryGetValue(k, out int at))
        {
            _items[at] = new(key, value);
        }
        else
        {
            _index[k] = _items.Count;
            _items.Add(new(key, value));
        }
    }

    /// <summary>The value under a string key, or null when absent.</summary>
    public bool TryGet(string key, out object? value)
    {
        value = null;
        if (!_index.TryGetValue(key, out int at)) return false;
        value = _items[at].Value;
        return true;
    }
}

/// <summary>One of the globals a weights-only load accepts (see <see cref="TorchCheckpointGlobals"/>); the only callables a pickle can name.</summary>
internal sealed record PickleGlobal(string Module, string Name, TorchGlobalKind Kind, ScalarType? Dtype = null)
{
    /// <summary>The dotted name, as Python writes it.</summary>
    public string FullName => $"{Module}.{Name}";
}

/// <summary>What an allowed global does when called (REDUCE / NEWOBJ) or used as a value.</summary>
internal enum TorchGlobalKind
{
    /// <summary><c>collections.OrderedDict</c>: called with no arguments, gives an empty dict.</summary>
    OrderedDict,
    /// <summary><c>torch._utils._rebuild_tensor_v2</c>(storage, offset, size, stride, requires_grad, hooks[, metadata]).</summary>
    RebuildTensorV2,
    /// <summary><c>torch._utils._rebuild_tensor_v3</c>(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata]).</summary>
    RebuildTensorV3,
    /// <summary><c>torch._utils._rebuild_parameter</c>(tensor, requires_grad, hooks): the tensor.</summary>
    RebuildParameter,
    /// <summary><c>torch._utils._rebuild_parameter_with_state</c>(tensor, requires_grad, hooks, state): the tensor.</summary>
    RebuildParameterWithState,
    /// <summary><c>torch.nn.parameter.Parameter</c>(tensor[, requires_grad]): the tensor.</summary>
    Parameter,
    /// <summary><c>torch.Size</c>(tuple): the tuple.</summary>
    Size,
    /// <summary><c>_codecs.encode</c>(str, 'latin1'): how protocol 2 writes Python bytes.</summary>
    CodecsEncode,
    /// <summary>A <c>torch.XStorage</c> class: only ever the type in a storage record.</summary>
    StorageType,
    /// <summary>A <c>torch.float32</c>-like dtype object: a value.</summary>
    Dtype,
}

/// <summary>A storage record (BINPERSID <c>('storage', type, key, location, numel)</c>): bytes in <c>data/&lt;key&gt;</c>.</summary>
internal sealed record TorchStorageRef(string Key, ScalarType Dtype, long Numel, string Location, long ByteLength);

/// <summary>A tensor to build: a strided view of a storage, in elements of <paramref name="Dtype"/>.</summary>
internal sealed record TorchTensorRef(TorchStorageRef Storage, ScalarType Dtype, long Offset, long[] Size, long[] Stride);
