using System.Text.Json.Nodes;
using Ddpo.Models.Loading;

namespace Ddpo.Pipelines;

/// <summary>
/// The component folders of a diffusers <c>StableDiffusion3Pipeline</c> folder, checked against <c>model_index.json</c>.
/// <c>text_encoder_3</c> / <c>tokenizer_3</c> are null when the index lists them as <c>[null, null]</c> (SD3 without
/// T5, as diffusers allows); every other component is required.
/// </summary>
internal sealed record StableDiffusion3Layout(string Root, string Transformer, string Vae, string TextEncoder, string TextEncoder2,
    string? TextEncoder3, string Tokenizer, string Tokenizer2, string? Tokenizer3, string SchedulerConfig)
{
    /// <summary>Reads and checks the layout of <paramref name="directory"/>.</summary>
    public static StableDiffusion3Layout Read(string directory)
    {
        var indexPath = Path.Combine(directory, "model_index.json");
        if (!File.Exists(indexPath))
        {
            throw new ModelLoadException($"{indexPath}: not found (a StableDiffusion3Pipeline folder has model_index.json, transformer/, vae/, text_encoder(_2,_3)/, tokenizer(_2,_3)/ and scheduler/)");
        }
        var index = StrictJson.Parse(Utf8Text.ReadFile(indexPath, message => new ModelLoadException(message))) as JsonObject
            ?? throw new ModelLoadException($"{indexPath}: expected a JSON object");

        bool Listed(string name) => index.TryGetPropertyValue(name, out var v) && v is JsonArray a && a.Count == 2 && a[0] is not null && a[1] is not null;

        string Required(string name)
        {
            var dir = Path.Combine(directory, name);
            if (!Directory.Exists(dir))
            {
                throw new ModelLoadException($"{dir}: component folder '{name}' is missing (model_index.json: {indexPath})");
            }
            return dir;
        }

        bool withT5 = Listed("text_encoder_3") || Listed("tokenizer_3");
        var scheduler = Path.Combine(Required("scheduler"), "scheduler_config.json");
        if (!File.Exists(scheduler)) throw new ModelLoadException($"{scheduler}: not found (the FlowMatchEulerDiscreteScheduler's config)");
        return new StableDiffusion3Layout(directory, Required("transformer"), Required("vae"), Required("text_encoder"), Required("text_encoder_2"),
            withT5 ? Required("text_encoder_3") : null, Required("tokenizer"), Required("tokenizer_2"), withT5 ? Required("tokenizer_3") : null, scheduler);
    }

    /// <summary>Writes the <c>model_index.json</c> diffusers 0.31 writes for a StableDiffusion3Pipeline with T5.</summary>
    public static void WriteIndex(string directory)
    {
        var o = new JsonObject
        {
            ["_class_name"] = PipelineLoader.StableDiffusion3,
            ["_diffusers_version"] = "0.31.0",
            ["scheduler"] = new JsonArray("diffusers", "FlowMatchEulerDiscreteScheduler"),
            ["text_encoder"] = new JsonArray("transformers", "CLIPTextModelWithProjection"),
            ["text_encoder_2"] = new JsonArray("transformers", "CLIPTextModelWithProjection"),
            ["text_encoder_3"] = new JsonArray("transformers", "T5EncoderModel"),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["tokenizer_2"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["tokenizer_3"] = new JsonArray("transformers", "T5Tokenizer"),
            ["transformer"] = new JsonArray("diffusers", "SD3Transformer2DModel"),
            ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
        };
        File.WriteAllText(Path.Combine(directory, "model_index.json"), o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
}
