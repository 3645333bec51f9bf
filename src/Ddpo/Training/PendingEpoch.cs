using System.Text.Json;
using Ddpo.Models.Loading;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// An epoch whose samples were drawn but whose rewards failed, kept on disk (<c>RUN/pending/epoch-NNNNNN</c>)
/// so that <c>--resume</c> scores them instead of sampling again: no epoch's work is lost.
/// </summary>
public static class PendingEpoch
{
    private const string TensorsFile = "samples.safetensors";
    private const string PromptsFile = "prompts.json";

    /// <summary>The folder of a pending epoch.</summary>
    public static string Folder(RunDirectory run, int epoch) => Path.Combine(run.Root, "pending", $"epoch-{epoch:D6}");

    /// <summary>Writes the samples and images atomically (temporary folder, then rename).</summary>
    public static string Save(RunDirectory run, int epoch, EpochSamples samples, Tensor images)
    {
        var dir = Folder(run, epoch);
        var temp = dir + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, true);
        Directory.CreateDirectory(temp);
        var tensors = new Dictionary<string, Tensor>
        {
            ["prompt_embeds"] = samples.PromptEmbeds,
            ["timesteps"] = samples.Timesteps,
            ["latents"] = samples.Latents,
            ["next_latents"] = samples.NextLatents,
            ["log_probs"] = samples.LogProbs,
            ["images"] = images,
        };
        if (samples.NegativeEmbeds is not null) tensors["negative_embeds"] = samples.NegativeEmbeds;
        SafetensorsFile.SaveAtomic(Path.Combine(temp, TensorsFile), tensors);
        File.WriteAllText(Path.Combine(temp, PromptsFile), JsonSerializer.Serialize(new { prompts = samples.Prompts, metadata = samples.Metadata }));
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.Move(temp, dir);
        return dir;
    }

    /// <summary>Loads a pending epoch onto <paramref name="device"/>, or returns null when there is none.</summary>
    public static (EpochSamples Samples, Tensor Images)? TryLoad(RunDirectory run, int epoch, Device device)
    {
        var dir = Folder(run, epoch);
        if (!Directory.Exists(dir)) return null;
        var tensors = SafetensorsFile.Load(Path.Combine(dir, TensorsFile));
        Tensor Take(string key) => tensors.TryGetValue(key, out var t)
            ? t.to(device)
            : throw new ModelLoadException($"{dir}: pending samples lack '{key}'");
        var promptsPath = Path.Combine(dir, PromptsFile);
        using var doc = JsonDocument.Parse(File.ReadAllText(promptsPath));
        var prompts = doc.RootElement.GetProperty("prompts").EnumerateArray().Select(p => p.GetString()!).ToArray();
        var metadata = doc.RootElement.GetProperty("metadata").EnumerateArray()
            .Select(m => (IReadOnlyDictionary<string, string>)m.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? ""))
            .ToArray();
        var samples = new EpochSamples
        {
            Prompts = prompts,
            Metadata = metadata,
            PromptEmbeds = Take("prompt_embeds"),
            NegativeEmbeds = tensors.ContainsKey("negative_embeds") ? Take("negative_embeds") : null,
            Timesteps = Take("timesteps"),
            Latents = Take("latents"),
            NextLatents = Take("next_latents"),
            LogProbs = Take("log_probs"),
            Rewards = Enumerable.Repeat(float.NaN, prompts.Length).ToArray(),
        };
        return (samples, tensors["images"]);
    }

    /// <summary>Removes a pending epoch once it has been scored.</summary>
    public static void Delete(RunDirectory run, int epoch)
    {
        var dir = Folder(run, epoch);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
    }
}
