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
        var index = PipelineIndex.Open(directory,
            "a StableDiffusion3Pipeline folder has model_index.json, transformer/, vae/, text_encoder(_2,_3)/, tokenizer(_2,_3)/ and scheduler/");
        bool withT5 = index.Listed("text_encoder_3") || index.Listed("tokenizer_3");
        var scheduler = index.SchedulerConfig();
        return new StableDiffusion3Layout(directory, index.Required("transformer"), index.Required("vae"), index.Required("text_encoder"),
            index.Required("text_encoder_2"), withT5 ? index.Required("text_encoder_3") : null, index.Required("tokenizer"),
            index.Required("tokenizer_2"), withT5 ? index.Required("tokenizer_3") : null, scheduler);
    }

    /// <summary>Writes the <c>model_index.json</c> diffusers 0.31 writes for a StableDiffusion3Pipeline with T5.</summary>
    public static void WriteIndex(string directory) => PipelineIndex.Write(directory, PipelineLoader.StableDiffusion3,
    [
        ("scheduler", "diffusers", "FlowMatchEulerDiscreteScheduler"),
        ("text_encoder", "transformers", "CLIPTextModelWithProjection"),
        ("text_encoder_2", "transformers", "CLIPTextModelWithProjection"),
        ("text_encoder_3", "transformers", "T5EncoderModel"),
        ("tokenizer", "transformers", "CLIPTokenizer"),
        ("tokenizer_2", "transformers", "CLIPTokenizer"),
        ("tokenizer_3", "transformers", "T5Tokenizer"),
        ("transformer", "diffusers", "SD3Transformer2DModel"),
        ("vae", "diffusers", "AutoencoderKL"),
    ]);
}
