using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Loading;

/// <summary>
/// Copies a state dict into a module, strictly: every parameter and persistent buffer of the module
/// must be present with the same shape, and every tensor given must be used. All problems are
/// collected and reported together, naming the tensors and the source file.
/// </summary>
internal static class StateDictLoader
{
    /// <summary>
    /// Loads <paramref name="tensors"/> into <paramref name="module"/>. Values are converted to the
    /// module's dtype and device. <paramref name="ignoreUnexpected"/> lists key prefixes that may be
    /// present in the file but are not used (e.g. the text tower in a full <c>CLIPModel</c> file).
    /// </summary>
    public static void LoadStrict(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source,
        params string[] ignoreUnexpected)
    {
        var expected = module.state_dict();
        var missing = new List<string>();
        var mismatched = new List<string>();
        foreach (var (name, target) in expected)
        {
            if (!tensors.TryGetValue(name, out var value))
            {
                missing.Add(name);
            }
            else if (!value.shape.SequenceEqual(target.shape))
            {
                mismatched.Add($"{name}: file has [{string.Join(", ", value.shape)}], model expects [{string.Join(", ", target.shape)}]");
            }
        }
        var unexpected = tensors.Keys
            .Where(k => !expected.ContainsKey(k) && !ignoreUnexpected.Any(p => k.StartsWith(p, StringComparison.Ordinal)))
            .ToList();
        if (missing.Count + mismatched.Count + unexpected.Count > 0)
        {
            throw new ModelLoadException(Describe(source, missing, unexpected, mismatched));
        }
        using (no_grad())
        {
            foreach (var (name, target) in expected)
            {
                target.copy_(tensors[name]);
            }
        }
    }

    private static string Describe(string source, List<string> missing, List<string> unexpected, List<string> mismatched)
    {
        static string List(string title, List<string> items) =>
            items.Count == 0 ? "" : $"\n  {title} ({items.Count}): {string.Join(", ", items.Take(12))}{(items.Count > 12 ? ", ..." : "")}";
        return $"{source}: state dict does not match the model (strict loading)"
            + List("missing keys", missing)
            + List("unexpected keys", unexpected)
            + List("shape mismatches", mismatched);
    }

    /// <summary>Disposes every tensor of a loaded dictionary.</summary>
    public static void DisposeAll(IDictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values) t.Dispose();
        tensors.Clear();
    }
}
