namespace Ddpo.Pipelines;

/// <summary>
/// Sizes of a small randomly initialised flow-transformer pipeline (<see cref="TinySd3Writer"/>: SD3's two CLIPs with
/// projection, T5, an MM-DiT, the 16-channel VAE; <see cref="TinyFluxWriter"/>: FLUX's CLIP, T5, double- and
/// single-stream blocks) at toy sizes, with the components and files of the real ones.
/// </summary>
internal sealed record TinyTransformerOptions
{
    /// <summary>Latent side length the transformer works at (<c>sample_size</c>).</summary>
    public int SampleSize { get; init; } = 16;
    /// <summary>Transformer blocks (<c>num_layers</c>; FLUX: double-stream blocks, and as many single-stream ones).</summary>
    public int Layers { get; init; } = 2;
    /// <summary>Attention heads (<c>num_attention_heads</c>).</summary>
    public int Heads { get; init; } = 2;
    /// <summary>Width of one head (<c>attention_head_dim</c>); the transformer is heads x this wide.</summary>
    public int HeadDim { get; init; } = 16;
    /// <summary>Width of each CLIP text encoder (also its projection); T5 and <c>joint_attention_dim</c> are twice this.</summary>
    public int TextHiddenSize { get; init; } = 16;
    /// <summary>Layers of each text encoder.</summary>
    public int TextLayers { get; init; } = 2;
    /// <summary>VAE <c>block_out_channels</c> (downsampling factor 2^(n-1)).</summary>
    public int[] VaeChannels { get; init; } = [16, 16];
    /// <summary>Group-norm groups of the VAE.</summary>
    public int NormGroups { get; init; } = 8;
    /// <summary>Seed of the random initialisation.</summary>
    public long Seed { get; init; } = 0;

    /// <summary>Checks the sizes, naming the option at fault.</summary>
    public void Validate()
    {
        if (SampleSize < 2 || SampleSize % 2 != 0) throw new ArgumentException($"--sample-size: {SampleSize} must be an even number >= 2 (patch size 2)");
        if (Layers < 1) throw new ArgumentException("--layers must be >= 1");
        if (Heads < 1 || HeadDim < 8 || HeadDim % 4 != 0) throw new ArgumentException("--heads must be >= 1 and --head-dim a multiple of 4, at least 8");
        if (TextHiddenSize < 4 || TextHiddenSize % 4 != 0) throw new ArgumentException($"--text-hidden: {TextHiddenSize} must be a positive multiple of 4");
        if (TextLayers < 2) throw new ArgumentException("--text-layers must be >= 2 (SD3 reads the penultimate CLIP layer)");
        if (VaeChannels.Length < 1 || VaeChannels.Any(c => c < 1 || c % NormGroups != 0))
            throw new ArgumentException($"--vae-channels: every VAE channel count must be a positive multiple of --norm-groups {NormGroups}");
    }
}
