using Ddpo.Models.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>
/// Finds a CLIP tower's weights in a folder and renames them to the module's names: keys may carry
/// the tower prefix (<c>text_model.</c> / <c>vision_model.</c>: transformers 4.x files, full
/// <c>CLIPModel</c> files) or not (transformers 5 <c>CLIPTextModel</c> files); the other tower, the
/// projections the module lacks, <c>logit_scale</c> and the legacy <c>position_ids</c> buffers are dropped.
/// </summary>
internal static class ClipWeights
{
    /// <summary>Weight file names tried in order (single file or sharded with an <c>.index.json</c>).</summary>
    public static readonly string[] Candidates = ["model.safetensors", "model.fp16.safetensors"];

    /// <summary>The weight file (or shard index) that <see cref="SafetensorsFile.LoadFromFolder"/> will read, for messages.</summary>
    public static string Describe(string folder)
    {
        foreach (var name in Candidates)
        {
            var single = Path.Combine(folder, name);
            if (File.Exists(single)) return single;
            if (File.Exists(single + ".index.json")) return single + ".index.json";
        }
        return folder;
    }

    /// <summary>Maps file keys to <see cref="ClipTextModel"/> keys (no prefix).</summary>
    public static Dictionary<string, Tensor> ForText(IReadOnlyDictionary<string, Tensor> file, string source)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (key, value) in file)
        {
            if (key.StartsWith("vision_model.", StringComparison.Ordinal) || key is "visual_projection.weight"
                or "text_projection.weight" or "logit_scale") continue;
            var name = key.StartsWith("text_model.", StringComparison.Ordinal) ? key["text_model.".Length..] : key;
            if (name == "embeddings.position_ids") continue;
            Add(result, name, key, value, source);
        }
        return result;
    }

    /// <summary>Maps file keys to <see cref="ClipVisionModelWithProjection"/> keys (<c>vision_model.</c> prefix, <c>visual_projection.weight</c>).</summary>
    public static Dictionary<string, Tensor> ForVision(IReadOnlyDictionary<string, Tensor> file, string source)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (key, value) in file)
        {
            if (key.StartsWith("text_model.", StringComparison.Ordinal) || key is "text_projection.weight" or "logit_scale") continue;
            var name = key.StartsWith("vision_model.", StringComparison.Ordinal) || key == "visual_projection.weight"
                ? key
                : "vision_model." + key;
            if (name == "vision_model.embeddings.position_ids") continue;
            Add(result, name, key, value, source);
        }
        return result;
    }

    /// <summary>Loads a folder's weights into <paramref name="module"/> strictly after renaming.</summary>
    public static void LoadInto(nn.Module module, string folder, Func<IReadOnlyDictionary<string, Tensor>, string, Dictionary<string, Tensor>> rename)
    {
        var file = SafetensorsFile.LoadFromFolder(folder, Candidates);
        try
        {
            var source = Describe(folder);
            StateDictLoader.LoadStrict(module, rename(file, source), source);
        }
        finally
        {
            StateDictLoader.DisposeAll(file);
        }
    }

    private static void Add(Dictionary<string, Tensor> result, string name, string key, Tensor value, string source)
    {
        if (!result.TryAdd(name, value))
        {
            throw new ModelLoadException($"{source}: weight '{name}' appears twice in the file (with and without its prefix; second copy '{key}')");
        }
    }
}
