using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Loading;

/// <summary>
/// Reads and writes safetensors files (through TorchSharp.PyBridge) after checking the header
/// ourselves, so a truncated or corrupt file is an error that names it and says what is wrong.
/// </summary>
public static class SafetensorsFile
{
    /// <summary>Checks the header and the data size; throws <see cref="ModelLoadException"/> naming the file.</summary>
    public static void Validate(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelLoadException($"{path}: weight file not found");
        }
        long length = new FileInfo(path).Length;
        if (length < 8)
        {
            throw new ModelLoadException($"{path}: corrupt safetensors file: {length} bytes, too short for the 8-byte header length");
        }
        using var stream = File.OpenRead(path);
        Span<byte> lenBytes = stackalloc byte[8];
        stream.ReadExactly(lenBytes);
        ulong headerLength = BitConverter.ToUInt64(lenBytes);
        if (headerLength == 0 || headerLength > (ulong)(length - 8) || headerLength > 100_000_000)
        {
            throw new ModelLoadException($"{path}: corrupt safetensors file: header claims {headerLength} bytes but the file has {length}");
        }
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        JsonObject json;
        try
        {
            json = JsonNode.Parse(header) as JsonObject ?? throw new ModelLoadException($"{path}: corrupt safetensors file: header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"{path}: corrupt safetensors file: header is not valid JSON ({e.Message})", e);
        }
        long dataLength = length - 8 - (long)headerLength;
        foreach (var (name, node) in json)
        {
            if (name == "__metadata__") continue;
            var offsets = node?["data_offsets"] as JsonArray;
            if (offsets is null || offsets.Count != 2)
            {
                throw new ModelLoadException($"{path}: corrupt safetensors file: tensor '{name}' has no data_offsets");
            }
            long end = offsets[1]!.GetValue<long>();
            if (end > dataLength)
            {
                throw new ModelLoadException($"{path}: truncated safetensors file: tensor '{name}' ends at byte {end} of the data section but only {dataLength} bytes are present");
            }
        }
    }

    /// <summary>Loads every tensor of a file (on the CPU, in its stored dtype) after validating it.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        Validate(path);
        try
        {
            return TorchSharp.PyBridge.Safetensors.LoadStateDict(path);
        }
        catch (Exception e) when (e is not ModelLoadException)
        {
            throw new ModelLoadException($"{path}: could not read safetensors file ({e.Message})", e);
        }
    }

    /// <summary>
    /// Saves tensors atomically: written to a temporary file in the same folder, then renamed over
    /// the destination, so a crash never leaves a half-written file under the final name.
    /// </summary>
    public static void SaveAtomic(string path, IDictionary<string, Tensor> tensors)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        // The CPU copies (and the aliases detach() makes on the way) die with the scope; the caller's tensors,
        // made outside it, are not touched.
        using var scope = NewDisposeScope();
        var contiguous = tensors.ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().contiguous());
        try
        {
            TorchSharp.PyBridge.Safetensors.SaveStateDict(temp, contiguous);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
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
            ? $" (found {Path.GetFileName(pickles[0])}: PyTorch pickle files are not loaded, for safety; convert to safetensors)"
            : "";
        throw new ModelLoadException($"{folder}: no weight file found; expected one of {string.Join(", ", candidates)}{hint}");
    }

    private static Dictionary<string, Tensor> LoadSharded(string indexPath)
    {
        JsonObject map;
        try
        {
            map = JsonNode.Parse(File.ReadAllText(indexPath))?["weight_map"] as JsonObject
                ?? throw new ModelLoadException($"{indexPath}: no 'weight_map' object");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"{indexPath}: not valid JSON ({e.Message})", e);
        }
        var folder = Path.GetDirectoryName(indexPath)!;
        var result = new Dictionary<string, Tensor>();
        foreach (var shard in map.Select(kv => kv.Value!.GetValue<string>()).Distinct())
        {
            foreach (var kv in Load(Path.Combine(folder, shard)))
            {
                result[kv.Key] = kv.Value;
            }
        }
        return result;
    }
}
