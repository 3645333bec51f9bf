namespace Ddpo.Pipelines;

/// <summary>The component folders of a diffusers <c>FluxPipeline</c> folder (FLUX.1-dev / schnell), checked against <c>model_index.json</c>.</summary>
internal sealed record FluxLayout(string Root, string Transformer, string Vae, string TextEncoder, string TextEncoder2,
    string Tokenizer, string Tokenizer2, string SchedulerConfig)
{
    /// <summary>Reads and checks the layout of <paramref name="directory"/>.</summary>
    public static FluxLayout Read(string directory)
    {
        var index = PipelineIndex.Open(directory,
            "a FluxPipeline folder has model_index.json, transformer/, vae/, text_encoder(_2)/, tokenizer(_2)/ and scheduler/");
        var scheduler = index.SchedulerConfig();
        return new FluxLayout(directory, index.Required("transformer"), index.Required("vae"), index.Required("text_encoder"),
            index.Required("text_encoder_2"), index.Required("tokenizer"), index.Required("tokenizer_2"), scheduler);
    }

    /// <summary>Writes the <c>model_index.json</c> diffusers 0.31 writes for a FluxPipeline.</summary>
    public static void WriteIndex(string directory) => PipelineIndex.Write(directory, PipelineLoader.Flux,
    [
        ("scheduler", "diffusers", "FlowMatchEulerDiscreteScheduler"),
        ("text_encoder", "transformers", "CLIPTextModel"),
        ("text_encoder_2", "transformers", "T5EncoderModel"),
        ("tokenizer", "transformers", "CLIPTokenizer"),
        ("tokenizer_2", "transformers", "T5Tokenizer"),
        ("transformer", "diffusers", "FluxTransformer2DModel"),
        ("vae", "diffusers", "AutoencoderKL"),
    ]);
}
