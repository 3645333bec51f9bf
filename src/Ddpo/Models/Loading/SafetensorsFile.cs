using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;
using Ddpo.Runtime;

namespace Ddpo.Models.Loading;

/// <summary>
/// Reads safetensors files after checking the header completely (<see cref="SafetensorsHeader"/>), so a
/// truncated or corrupt file is an error that names it, the tensor and what was expected; writes them
/// through TorchSharp.PyBridge.
/// </summary>
internal static class SafetensorsFile
{
    /// <summary>Checks the header completely (see <see cref="SafetensorsHeader"/>); throws <see cref="ModelLoadException"/> naming the file.</summary>
    public static SafetensorsHeader Validate(string path) => SafetensorsHeader.Read(path);

    /// <summary>
    /// Loads every tensor of a file (on the CPU, in its stored dtype). The header is validated first, so no
    /// tensor is made from a shape or offsets that do not fit the file.
    /// </summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelLoadException($"{path}: weight file not found");
        }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            using var stream = File.OpenRead(path);
            var header = SafetensorsHeader.Read(stream, path);
            foreach (var entry in header.Entries)
            {
                long byteCount = entry.End - entry.Begin;
                if (byteCount > Array.MaxLength)
                {
                    throw new ModelLoadException($"{path}: tensor {SafetensorsHeader.Quote(entry.Name)} has {byteCount} bytes; tensors over 2 GB are not supported");
                }
                var bytes = new byte[byteCount];
                stream.Position = header.DataStart + entry.Begin;
                stream.ReadExactly(bytes);
                var tensor = empty(entry.Shape, SafetensorsHeader.Dtypes[entry.Dtype].Type);
                result.Add(entry.Name, tensor);
                tensor.bytes = bytes;
            }
            return result;
        }
        catch (Exception e)
        {
            StateDictLoader.DisposeAll(result);
            if (e is ModelLoadException) throw;
            if (e is IOException or UnauthorizedAccessException)
            {
                throw new ModelLoadException($"{path}: could not read safetensors file ({e.Message})", e);
            }
            throw;
        }
    }

    /// <summary>
    /// Saves tensors atomically: written to a temporary file in the same folder, then renamed over
    /// the destination, so a crash never leaves a half-written file under the final name.
    /// </summary>
    public static void SaveAtomic(string path, IDictionary<string, Tensor> tensors)
    {
        // The CPU copies (and the aliases detach() makes on the way) die with the scope; the caller's tensors,
        // made outside it, are not touched.
        using var scope = NewDisposeScope();
        var contiguous = tensors.ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().contiguous());
        AtomicFile.Write(path, temp => TorchSharp.PyBridge.Safetensors.SaveStateDict(temp, contiguous));
    }

    /// <summary>
    /// Finds the weights of a model folder: a single safetensors file among <paramref name="candidates"/>
    /// or a sharded checkpoint with an <c>.index.json</c>, and loads all tensors.
    /// </summary>
    public static Dictionary<string, Tensor> LoadFromFolder(string folder, params string[] candidates)
    {
        if (!Directory.Exists(folder))
        {
            throw new ModelLoadException($"{folder}: model folder not found");
        }
        foreach (var name in candidates)
        {
            var single = Path.Combine(folder, name);
            if (File.Exists(single)) return Load(single);
            var index = single + ".index.json";
            if (File.Exists(index)) return LoadSharded(index);
        }
        var pickles = Directory.GetFiles(folder, "*.bin");
        var hint = pickles.Length > 0
            ? $" (found {Path.GetFileName(pickles[0])}: PyTorch pickle files are not loaded from model folders; convert it to safetensors with `ddpo convert`, which reads tensors only and runs nothing)"
            : "";
        throw new ModelLoadException($"{folder}: no weight file found; expected one of {string.Join(", ", candidates)}{hint}");
    }

    private static Dictionary<string, Tensor> LoadSharded(string indexPath)
    {
        var shards = ReadShardNames(indexPath);
        var folder = Path.GetDirectoryName(indexPath)!;
        var result = new Dictionary<string, Tensor>();
        try
        {
            foreach (var shard in shards)
            {
                foreach (var kv in Load(Path.Combine(folder, shard)))
                {
                    if (result.TryGetValue(kv.Key, out var previous)) previous.Dispose();
                    result[kv.Key] = kv.Value;
                }
            }
        }
        catch
        {
            StateDictLoader.DisposeAll(result);
            throw;
        }
        return result;
    }

    /// <summary>The distinct shard file names of a sharded checkpoint's <c>.index.json</c> (its <c>weight_map</c> values).</summary>
    private static List<string> ReadShardNames(string indexPath)
    {
        JsonObject map;
        try
        {
            var text = Utf8Text.ReadFile(indexPath, message => new ModelLoadException(message));
            map = StrictJson.Parse(text)?["weight_map"] as JsonObject
                ?? throw new ModelLoadException($"{indexPath}: no 'weight_map' object (expected {{\"weight_map\": {{tensor name: shard file}}}})");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"{indexPath}: not valid JSON ({e.Message})", e);
        }
        catch (InvalidOperationException e)
        {
            throw new ModelLoadException($"{indexPath}: expected a JSON object with a 'weight_map' object ({e.Message})", e);
        }
        var shards = new List<string>();
        foreach (var (tensor, node) in map)
        {
            if (node is not JsonValue value || !value.TryGetValue<string>(out var shard) || shard.Length == 0
                || Path.GetFileName(shard) != shard)
            {
                throw new ModelLoadException($"{indexPath}: weight_map entry {SafetensorsHeader.Quote(tensor)} is {node?.ToJsonString() ?? "null"}, expected the file name of a shard in the same folder");
            }
            if (!shards.Contains(shard)) shards.Add(shard);
        }
        return shards;
    }
}
