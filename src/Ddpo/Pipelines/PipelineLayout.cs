using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Models.Loading;

namespace Ddpo.Pipelines;

/// <summary>
/// The component folders of a diffusers pipeline folder, checked against <c>model_index.json</c>.
/// A component listed there (or required) whose folder is missing is an error naming it.
/// </summary>
/// <param name="Root">The pipeline folder.</param>
/// <param name="Unet">The <c>unet/</c> folder.</param>
/// <param name="Vae">The <c>vae/</c> folder, or null for a pixel-space model.</param>
/// <param name="TextEncoder">The <c>text_encoder/</c> folder.</param>
/// <param name="Tokenizer">The <c>tokenizer/</c> folder.</param>
/// <param name="SchedulerConfig">The scheduler config file, or null to use Stable Diffusion's.</param>
internal sealed record PipelineLayout(string Root, string Unet, string? Vae, string TextEncoder, string Tokenizer, string? SchedulerConfig)
{
    /// <summary>Reads and checks the layout of <paramref name="directory"/>.</summary>
    public static PipelineLayout Read(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new ModelLoadException($"{directory}: pipeline folder not found");
        }
        var indexPath = Path.Combine(directory, "model_index.json");
        if (!File.Exists(indexPath))
        {
            throw new ModelLoadException($"{indexPath}: not found (a diffusers pipeline folder has model_index.json, unet/, text_encoder/, tokenizer/, scheduler/ and optionally vae/)");
        }
        JsonObject index;
        try
        {
            index = StrictJson.Parse(Utf8Text.ReadFile(indexPath, message => new ModelLoadException(message))) as JsonObject
                ?? throw new ModelLoadException($"{indexPath}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"{indexPath}: not valid JSON ({e.Message})", e);
        }

        string Required(string name)
        {
            var dir = Path.Combine(directory, name);
            if (!Directory.Exists(dir))
            {
                throw new ModelLoadException($"{dir}: component folder '{name}' is missing (model_index.json: {indexPath})");
            }
            return dir;
        }

        bool Listed(string name) => index.TryGetPropertyValue(name, out var v) && v is JsonArray a && a.Count == 2 && a[0] is not null && a[1] is not null;

        string? vae = null;
        if (Listed("vae"))
        {
            vae = Required("vae");
        }
        var schedulerConfig = Path.Combine(directory, "scheduler", "scheduler_config.json");
        return new PipelineLayout(directory, Required("unet"), vae, Required("text_encoder"), Required("tokenizer"),
            File.Exists(schedulerConfig) ? schedulerConfig : null);
    }

    /// <summary>Writes a <c>model_index.json</c> for a pipeline with or without a VAE.</summary>
    public static void WriteIndex(string directory, bool hasVae)
    {
        var o = new JsonObject
        {
            ["_class_name"] = "StableDiffusionPipeline",
            ["_diffusers_version"] = "0.40.0",
            ["scheduler"] = new JsonArray("diffusers", "DDIMScheduler"),
            ["text_encoder"] = new JsonArray("transformers", "CLIPTextModel"),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
            ["vae"] = hasVae ? new JsonArray("diffusers", "AutoencoderKL") : new JsonArray(null, null),
            ["safety_checker"] = new JsonArray(null, null),
            ["feature_extractor"] = new JsonArray(null, null),
            ["requires_safety_checker"] = false,
        };
        File.WriteAllText(Path.Combine(directory, "model_index.json"), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
