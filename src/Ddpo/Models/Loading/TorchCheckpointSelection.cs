namespace Ddpo.Models.Loading;

/// <summary>
/// Finds the state dict in an unpickled checkpoint: the top-level dict when it holds tensors, else the one dict of
/// tensors under <c>state_dict</c>, <c>model</c> or <c>module</c>. Values that are not tensors (an epoch, a name,
/// an optimizer state) are skipped and their keys reported.
/// </summary>
internal static class TorchCheckpointSelection
{
    /// <summary>The keys under which training scripts nest the weights.</summary>
    public static readonly string[] KnownKeys = ["state_dict", "model", "module"];

    /// <summary>
    /// The tensors of the state dict in <paramref name="root"/>, in file order; <paramref name="skipped"/> gets the
    /// keys of values that are not tensors (nested ones as <c>outer.inner</c>).
    /// </summary>
    public static List<KeyValuePair<string, TorchTensorRef>> Select(object? root, string path, List<string> skipped)
    {
        if (root is not PickleDict top)
        {
            throw new ModelLoadException($"{path}: the checkpoint holds {TorchCheckpointUnpickler.Describe(root)}, expected a dict of tensors (a state dict)");
        }
        if (top.Items.Any(kv => kv.Value is TorchTensorRef)) return Tensors(top, "", path, skipped);
        var nested = KnownKeys
            .Where(k => top.TryGet(k, out var v) && v is PickleDict d && d.Items.Any(kv => kv.Value is TorchTensorRef))
            .ToList();
        if (nested.Count != 1)
        {
            var why = nested.Count == 0
                ? $"no tensors at the top level nor in a dict under {string.Join(", ", KnownKeys.Select(k => $"'{k}'"))}"
                : $"several dicts of tensors ({string.Join(", ", nested.Select(k => $"'{k}'"))}), so which one is the model is not clear";
            throw new ModelLoadException($"{path}: {why}; top-level keys: {DescribeKeys(top)}");
        }
        top.TryGet(nested[0], out var chosen);
        foreach (var (key, _) in top.Items)
        {
            if (!Equals(key, nested[0])) skipped.Add(KeyText(key));
        }
        return Tensors((PickleDict)chosen!, nested[0] + ".", path, skipped);
    }

    private static List<KeyValuePair<string, TorchTensorRef>> Tensors(PickleDict dict, string prefix, string path, List<string> skipped)
    {
        var tensors = new List<KeyValuePair<string, TorchTensorRef>>();
        foreach (var (key, value) in dict.Items)
        {
            if (value is not TorchTensorRef tensor)
            {
                skipped.Add(prefix + KeyText(key));
                continue;
            }
            if (key is not string name)
            {
                throw new ModelLoadException($"{path}: a tensor's key is {TorchCheckpointUnpickler.Describe(key)} ({KeyText(key)}), expected a string name");
            }
            tensors.Add(new(name, tensor));
        }
        return tensors;
    }

    private static string KeyText(object? key) => key switch
    {
        string s => s,
        null => "None",
        _ => Convert.ToString(key, System.Globalization.CultureInfo.InvariantCulture) ?? "?",
    };

    private static string DescribeKeys(PickleDict dict)
    {
        if (dict.Items.Count == 0) return "none (an empty dict)";
        var shown = dict.Items.Take(20).Select(kv => $"'{KeyText(kv.Key)}' ({TorchCheckpointUnpickler.Describe(kv.Value)})");
        return string.Join(", ", shown) + (dict.Items.Count > 20 ? $", ... ({dict.Items.Count} in all)" : "");
    }
}
