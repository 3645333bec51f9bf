namespace Ddpo.Pipelines;

/// <summary>Sizes of a small randomly initialised pipeline written by <see cref="TinyPipelineWriter"/>.</summary>
internal sealed record TinyPipelineOptions
{
    /// <summary>UNet <c>block_out_channels</c>; the last block has no attention.</summary>
    public int[] UnetChannels { get; init; } = [32, 64];
    /// <summary>Resnets per UNet block.</summary>
    public int LayersPerBlock { get; init; } = 1;
    /// <summary>Attention heads per transformer block.</summary>
    public int AttentionHeads { get; init; } = 4;
    /// <summary>Group-norm groups (must divide every channel count).</summary>
    public int NormGroups { get; init; } = 8;
    /// <summary>Latent (or pixel) side length the UNet works at.</summary>
    public int SampleSize { get; init; } = 16;
    /// <summary>Write a VAE (latent model); false gives a pixel-space model with 3 channels.</summary>
    public bool WithVae { get; init; } = true;
    /// <summary>VAE <c>block_out_channels</c> (downsampling factor 2^(n-1)).</summary>
    public int[] VaeChannels { get; init; } = [16, 32];
    /// <summary>Text-encoder width (also the UNet's cross-attention width).</summary>
    public int TextHiddenSize { get; init; } = 32;
    /// <summary>Text-encoder layers.</summary>
    public int TextLayers { get; init; } = 2;
    /// <summary>Folder with CLIP's vocab.json + merges.txt to copy; null writes a small word-level vocabulary of our own.</summary>
    public string? TokenizerSource { get; init; }
    /// <summary>Seed of the random initialisation.</summary>
    public long Seed { get; init; } = 0;
    /// <summary>Scheduler prediction type.</summary>
    public string PredictionType { get; init; } = "epsilon";

    /// <summary>Checks the sizes, naming the option at fault.</summary>
    public void Validate()
    {
        if (UnetChannels.Length < 1 || UnetChannels.Any(c => c < 1 || c % NormGroups != 0))
            throw new ArgumentException($"--channels: every UNet channel count must be a positive multiple of --norm-groups {NormGroups}");
        if (UnetChannels.Any(c => c % AttentionHeads != 0))
            throw new ArgumentException($"--heads: {AttentionHeads} must divide every UNet channel count");
        if (SampleSize < 4 || SampleSize % (1 << (UnetChannels.Length - 1)) != 0)
            throw new ArgumentException($"--sample-size: {SampleSize} must be >= 4 and divisible by 2^(number of UNet blocks - 1)");
        if (WithVae && VaeChannels.Any(c => c < 1 || c % NormGroups != 0))
            throw new ArgumentException($"--vae-channels: every VAE channel count must be a positive multiple of --norm-groups {NormGroups}");
        if (TextHiddenSize < 1 || TextHiddenSize % AttentionHeads != 0)
            throw new ArgumentException($"--text-hidden: {TextHiddenSize} must be a positive multiple of --heads {AttentionHeads}");
        if (TextLayers < 1) throw new ArgumentException("--text-layers must be >= 1");
    }
}
