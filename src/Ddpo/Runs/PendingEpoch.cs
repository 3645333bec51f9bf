using System.Text.Json;
using Ddpo.Models.Loading;
using Ddpo.Runtime;
using static TorchSharp.torch;

namespace Ddpo.Runs;

/// <summary>What a pending epoch holds: named tensors (on the CPU; the caller disposes them) and each sample's prompt, metadata and group.</summary>
internal sealed record PendingEpochData(Dictionary<string, Tensor> Tensors, string[] Prompts, IReadOnlyDictionary<string, string>[] Metadata, long[]? Groups);

/// <summary>
/// An epoch whose samples were drawn but whose rewards failed, kept on disk (<c>RUN/pending/epoch-NNNNNN</c>,
/// <see cref="RunFolder.PendingEpochDir"/>) so that <c>--resume</c> scores them instead of sampling again: no epoch's
/// work is lost. The folder holds <c>samples.safetensors</c> (one sample per prompt along every tensor's first
/// dimension; the trajectory keys below) and <c>prompts.json</c> (prompts, metadata, groups).
/// </summary>
internal static class PendingEpoch
{
    /// <summary>
    /// The prefix of the conditioning's tensors (a model family's parts, e.g. Stable Diffusion's <c>prompt_embeds</c>);
    /// an unconditional batch's are stored as <c>negative_...</c> (only with guidance).
    /// </summary>
    public const string ConditioningPrefix = "prompt_";
    /// <summary>[N, T] timesteps.</summary>
    public const string Timesteps = "timesteps";
    /// <summary>[N, T, ...] latents before each step.</summary>
    public const string Latents = "latents";
    /// <summary>[N, T, ...] latents after each step.</summary>
    public const string NextLatents = "next_latents";
    /// <summary>[N, T] log-probabilities at sampling time.</summary>
    public const string LogProbs = "log_probs";
    /// <summary>[N, C, H, W] decoded images.</summary>
    public const string Images = "images";

    private const string TensorsFile = RunFolder.PendingTensorsFileName;
    private const string PromptsFile = RunFolder.PendingPromptsFileName;

    /// <summary>
    /// Writes <paramref name="tensors"/> (in their order) and the prompts, metadata and groups atomically (temporary
    /// folder, then rename); returns the folder.
    /// </summary>
    public static string Save(RunFolder run, int epoch, IReadOnlyDictionary<string, Tensor> tensors,
        string[] prompts, IReadOnlyDictionary<string, string>[] metadata, long[]? groups)
    {
        var dir = run.PendingEpochDir(epoch);
        AtomicFile.WriteFolder(dir, temp =>
        {
            SafetensorsFile.SaveAtomic(Path.Combine(temp, TensorsFile), tensors.ToDictionary(kv => kv.Key, kv => kv.Value));
            File.WriteAllText(Path.Combine(temp, PromptsFile), JsonSerializer.Serialize(new { prompts, metadata, groups }));
        });
        return dir;
    }

    /// <summary>
    /// Loads a pending epoch (tensors on the CPU), or returns null when there is none. Both files are checked first
    /// (prompts and metadata typed, one sample per prompt in every tensor, consistent step counts and latent shapes);
    /// a problem is a <see cref="ModelLoadException"/> naming the file.
    /// </summary>
    public static PendingEpochData? TryLoad(RunFolder run, int epoch)
    {
        var dir = run.PendingEpochDir(epoch);
        if (!Directory.Exists(dir)) return null;
        var (prompts, metadata, groups) = ReadPrompts(Path.Combine(dir, PromptsFile));
        var tensorsPath = Path.Combine(dir, TensorsFile);
        var tensors = SafetensorsFile.Load(tensorsPath);
        try
        {
            CheckShapes(tensorsPath, tensors, prompts.Length);
        }
        catch
        {
            StateDictLoader.DisposeAll(tensors);
            throw;
        }
        return new PendingEpochData(tensors, prompts, metadata, groups);
    }

    private static (string[] Prompts, IReadOnlyDictionary<string, string>[] Metadata, long[]? Groups) ReadPrompts(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelLoadException($"{path}: not found (a pending epoch has {TensorsFile} and {PromptsFile})");
        }
        try
        {
            using var doc = JsonDocument.Parse(Utf8Text.ReadFile(path, message => new ModelLoadException(message)));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException($"a JSON {root.ValueKind}, expected an object with 'prompts' and 'metadata'");
            }
            if (!root.TryGetProperty("prompts", out var promptsNode) || promptsNode.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException("'prompts' is missing or not an array, expected an array of strings");
            }
            var prompts = promptsNode.EnumerateArray().Select((p, i) => p.ValueKind == JsonValueKind.String
                ? p.GetString()!
                : throw new FormatException($"prompts[{i}] is a JSON {p.ValueKind}, expected a string")).ToArray();
            if (!root.TryGetProperty("metadata", out var metadataNode) || metadataNode.ValueKind != JsonValueKind.Array
                || metadataNode.GetArrayLength() != prompts.Length)
            {
                throw new FormatException($"'metadata' is missing or not an array of {prompts.Length} objects (one per prompt)");
            }
            var metadata = metadataNode.EnumerateArray().Select((m, i) =>
            {
                if (m.ValueKind != JsonValueKind.Object) throw new FormatException($"metadata[{i}] is a JSON {m.ValueKind}, expected an object");
                var values = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var p in m.EnumerateObject())
                {
                    values[p.Name] = p.Value.ValueKind switch
                    {
                        JsonValueKind.String => p.Value.GetString()!,
                        JsonValueKind.Null => "",
                        _ => throw new FormatException($"metadata[{i}].{p.Name} is a JSON {p.Value.ValueKind}, expected a string"),
                    };
                }
                return (IReadOnlyDictionary<string, string>)values;
            }).ToArray();
            long[]? groups = null;
            if (root.TryGetProperty("groups", out var groupsNode) && groupsNode.ValueKind != JsonValueKind.Null)
            {
                if (groupsNode.ValueKind != JsonValueKind.Array || groupsNode.GetArrayLength() != prompts.Length)
                {
                    throw new FormatException($"'groups' is not an array of {prompts.Length} integers (one group id per prompt)");
                }
                groups = groupsNode.EnumerateArray().Select((g, i) => g.ValueKind == JsonValueKind.Number && g.TryGetInt64(out var id)
                    ? id
                    : throw new FormatException($"groups[{i}] is a JSON {g.ValueKind}, expected an integer")).ToArray();
            }
            return (prompts, metadata, groups);
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            throw new ModelLoadException($"{path}: malformed pending prompts ({e.Message})", e);
        }
    }

    /// <summary>Every tensor holds one sample per prompt, and the trajectories agree on their step count and latent shape.</summary>
    private static void CheckShapes(string path, Dictionary<string, Tensor> tensors, int count)
    {
        static string Shape(Tensor t) => $"[{string.Join(", ", t.shape)}]";
        foreach (var key in new[] { Timesteps, Latents, NextLatents, LogProbs, Images })
        {
            if (!tensors.ContainsKey(key)) throw new ModelLoadException($"{path}: pending samples lack '{key}'");
        }
        if (!tensors.Keys.Any(k => k.StartsWith(ConditioningPrefix, StringComparison.Ordinal)))
        {
            throw new ModelLoadException($"{path}: pending samples lack their conditioning (tensors named '{ConditioningPrefix}...', e.g. 'prompt_embeds')");
        }
        foreach (var (key, t) in tensors)
        {
            if (t.dim() == 0 || t.shape[0] != count)
            {
                throw new ModelLoadException($"{path}: tensor '{key}' has shape {Shape(t)}, expected {count} samples (one per prompt of {PromptsFile}) along its first dimension");
            }
        }
        var timesteps = tensors[Timesteps];
        if (timesteps.dim() != 2)
        {
            throw new ModelLoadException($"{path}: tensor 'timesteps' has shape {Shape(timesteps)}, expected [samples, steps]");
        }
        foreach (var key in new[] { LogProbs })
        {
            if (!tensors[key].shape.SequenceEqual(timesteps.shape))
            {
                throw new ModelLoadException($"{path}: tensor '{key}' has shape {Shape(tensors[key])}, expected {Shape(timesteps)} like 'timesteps'");
            }
        }
        var latents = tensors[Latents];
        if (latents.dim() < 3 || latents.shape[1] != timesteps.shape[1])
        {
            throw new ModelLoadException($"{path}: tensor 'latents' has shape {Shape(latents)}, expected [samples, {timesteps.shape[1]} steps, ...]");
        }
        if (!tensors[NextLatents].shape.SequenceEqual(latents.shape))
        {
            throw new ModelLoadException($"{path}: tensor 'next_latents' has shape {Shape(tensors[NextLatents])}, expected {Shape(latents)} like 'latents'");
        }
        if (tensors[Images].dim() != 4)
        {
            throw new ModelLoadException($"{path}: tensor 'images' has shape {Shape(tensors[Images])}, expected [samples, channels, height, width]");
        }
    }

    /// <summary>Removes a pending epoch once it has been scored.</summary>
    public static void Delete(RunFolder run, int epoch)
    {
        var dir = run.PendingEpochDir(epoch);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
    }
}
