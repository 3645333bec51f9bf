namespace Ddpo.Pipelines;

/// <summary>
/// The component folders of a diffusers <c>StableDiffusionXLPipeline</c> folder, checked against <c>model_index.json</c>:
/// <c>unet/</c>, <c>vae/</c>, <c>text_encoder/</c> (CLIP-L), <c>text_encoder_2/</c> (OpenCLIP bigG with projection),
/// <c>tokenizer/</c> and <c>tokenizer_2/</c> are required; the scheduler config is optional (Stable Diffusion's DDIM
/// without it). <see cref="ForceZerosForEmptyPrompt"/> is the index's <c>force_zeros_for_empty_prompt</c> (default true).
/// </summary>
internal sealed record StableDiffusionXLLayout(string Root, string Unet, string Vae, string TextEncoder, string TextEncoder2,
    string Tokenizer, string Tokenizer2, string? SchedulerConfig, bool ForceZerosForEmptyPrompt)
{
    /// <summary>Reads and checks the layout of <paramref name="directory"/>.</summary>
    public static StableDiffusionXLLayout Read(string directory)
    {
        var index = PipelineIndex.Open(directory,
            "a StableDiffusionXLPipeline folder has model_index.json, unet/, vae/, text_encoder(_2)/, tokenizer(_2)/ and scheduler/");
        var scheduler = Path.Combine(directory, "scheduler", "scheduler_config.json");
        return new StableDiffusionXLLayout(directory, index.Required("unet"), index.Required("vae"), index.Required("text_encoder"),
            index.Required("text_encoder_2"), index.Required("tokenizer"), index.Required("tokenizer_2"),
            File.Exists(scheduler) ? scheduler : null, index.Flag("force_zeros_for_empty_prompt", true));
    }

    /// <summary>Writes the <c>model_index.json</c> diffusers 0.31 writes for a StableDiffusionXLPipeline (with <c>force_zeros_for_empty_prompt</c>).</summary>
    public static void WriteIndex(string directory, bool forceZerosForEmptyPrompt = true)
    {
        PipelineIndex.Write(directory, PipelineLoader.StableDiffusionXL,
        [
            ("scheduler", "diffusers", "DDIMScheduler"),
            ("text_encoder", "transformers", "CLIPTextModel"),
            ("text_encoder_2", "transformers", "CLIPTextModelWithProjection"),
            ("tokenizer", "transformers", "CLIPTokenizer"),
            ("tokenizer_2", "transformers", "CLIPTokenizer"),
            ("unet", "diffusers", "UNet2DConditionModel"),
            ("vae", "diffusers", "AutoencoderKL"),
        ]);
        // PipelineIndex.Write writes components only; the flag is a plain setting of the index.
        var path = Path.Combine(directory, "model_index.json");
        var o = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        o["force_zeros_for_empty_prompt"] = forceZerosForEmptyPrompt;
        File.WriteAllText(path, o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
}
