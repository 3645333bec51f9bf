using System.Text.Json;
using Ddpo.Models.Loading;
using Ddpo.Runtime;
using Ddpo.Policies;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// An epoch whose samples were drawn but whose rewards failed, kept on disk (<c>RUN/pending/epoch-NNNNNN</c>)
/// so that <c>--resume</c> scores them instead of sampling again: no epoch's work is lost.
/// </summary>
internal static class PendingEpoch
{
    private const string TensorsFile = "samples.safetensors";
    private const string PromptsFile = "prompts.json";

    /// <summary>The folder of a pending epoch.</summary>
    public static string Folder(RunDirectory run, int epoch) => Path.Combine(run.Root, "pending", $"epoch-{epoch:D6}");

    /// <summary>Writes the samples and images atomically (temporary folder, then rename).</summary>
    public static string Save(RunDirectory run, int epoch, EpochSamples samples, Tensor images)
    {
        var dir = Folder(run, epoch);
        AtomicFile.WriteFolder(dir, temp =>
        {
            // The conditioning under its parts' names (Stable Diffusion: prompt_embeds, negative_embeds).
            var tensors = new Dictionary<string, Tensor>(samples.Condition.Parts)
            {
                ["timesteps"] = samples.Times,
                ["latents"] = samples.Latents,
                ["next_latents"] = samples.NextLatents,
                ["log_probs"] = samples.LogProbs,
                ["images"] = images,
            };
            if (samples.Unconditional is not null) foreach (var (name, t) in samples.Unconditional.AsNegative()) tensors[name] = t;
            SafetensorsFile.SaveAtomic(Path.Combine(temp, TensorsFile), tensors);
            File.WriteAllText(Path.Combine(temp, PromptsFile), JsonSerializer.Serialize(new { prompts = samples.Prompts, metadata = samples.Metadata, groups = samples.Groups }));
        });
        return dir;
    }

    /// <summary>
    /// Loads a pending epoch onto <paramref name="device"/>, or returns null when there is none. Both files are
    /// checked first (prompts and metadata typed, one sample per prompt in every tensor, consistent step counts and
    /// latent shapes); a problem is a <see cref="ModelLoadException"/> naming the file.
    /// </summary>
    public static (EpochSamples Samples, Tensor Images)? TryLoad(RunDirectory run, int epoch, Device device)
    {
        var dir = Folder(run, epoch);
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
        Tensor Take(string key) => tensors[key].to(device);
        var (condition, unconditional) = Conditioning.FromStored(tensors, device);
        var samples = new EpochSamples
        {
            Prompts = prompts,
            Metadata = metadata,
            Condition = condition,
            Unconditional = unconditional,
            Times = Take("timesteps"),
            Latents = Take("latents"),
            NextLatents = Take("next_latents"),
            LogProbs = Take("log_probs"),
            Rewards = Enumerable.Repeat(float.NaN, prompts.Length).ToArray(),
            Groups = groups,
        };
        return (samples, tensors["images"]);
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
        foreach (var key in new[] { "prompt_embeds", "timesteps", "latents", "next_latents", "log_probs", "images" })
        {
            if (!tensors.ContainsKey(key)) throw new ModelLoadException($"{path}: pending samples lack '{key}'");
        }
        foreach (var (key, t) in tensors)
        {
            if (t.dim() == 0 || t.shape[0] != count)
            {
                throw new ModelLoadException($"{path}: tensor '{key}' has shape {Shape(t)}, expected {count} samples (one per prompt of {PromptsFile}) along its first dimension");
            }
        }
        var timesteps = tensors["timesteps"];
        if (timesteps.dim() != 2)
        {
            throw new ModelLoadException($"{path}: tensor 'timesteps' has shape {Shape(timesteps)}, expected [samples, steps]");
        }
        foreach (var key in new[] { "log_probs" })
        {
            if (!tensors[key].shape.SequenceEqual(timesteps.shape))
            {
                throw new ModelLoadException($"{path}: tensor '{key}' has shape {Shape(tensors[key])}, expected {Shape(timesteps)} like 'timesteps'");
            }
        }
        var latents = tensors["latents"];
        if (latents.dim() < 3 || latents.shape[1] != timesteps.shape[1])
        {
            throw new ModelLoadException($"{path}: tensor 'latents' has shape {Shape(latents)}, expected [samples, {timesteps.shape[1]} steps, ...]");
        }
        if (!tensors["next_latents"].shape.SequenceEqual(latents.shape))
        {
            throw new ModelLoadException($"{path}: tensor 'next_latents' has shape {Shape(tensors["next_latents"])}, expected {Shape(latents)} like 'latents'");
        }
        if (tensors["images"].dim() != 4)
        {
            throw new ModelLoadException($"{path}: tensor 'images' has shape {Shape(tensors["images"])}, expected [samples, channels, height, width]");
        }
    }

    /// <summary>Removes a pending epoch once it has been scored.</summary>
    public static void Delete(RunDirectory run, int epoch)
    {
        var dir = Folder(run, epoch);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
    }
}
