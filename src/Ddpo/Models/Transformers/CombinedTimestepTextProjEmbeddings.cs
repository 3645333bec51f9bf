using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>CombinedTimestepTextProjEmbeddings</c>: <c>timestep_embedder(sinusoid_256(t)) + text_embedder(pooled)</c>,
/// the sinusoid with <c>flip_sin_to_cos=True</c>, <c>downscale_freq_shift=0</c> in float32, then cast to the model dtype.
/// <c>text_embedder</c> (PixArtAlphaTextProjection, SiLU) has the same linear_1 / SiLU / linear_2 layout as a timestep embedding.
/// </summary>
internal sealed class CombinedTimestepTextProjEmbeddings : nn.Module
{
    private const int TimeChannels = 256;
    [ComponentName(Name = "timestep_embedder")] private readonly TimestepEmbedding _timestepEmbedder;
    [ComponentName(Name = "text_embedder")] private readonly TimestepEmbedding _textEmbedder;

    /// <summary>Creates the layer.</summary>
    public CombinedTimestepTextProjEmbeddings(int embeddingDim, int pooledProjectionDim, ModuleOptions o)
        : base(nameof(CombinedTimestepTextProjEmbeddings))
    {
        _timestepEmbedder = new TimestepEmbedding(TimeChannels, embeddingDim, o);
        _textEmbedder = new TimestepEmbedding(pooledProjectionDim, embeddingDim, o);
        RegisterComponents();
    }

    /// <summary>The conditioning [B, D] for float timesteps [B] and pooled text [B, pooled_projection_dim].</summary>
    public Tensor Forward(Tensor timestep, Tensor pooled)
    {
        using var scope = NewDisposeScope();
        var proj = TimestepEmbedding.Sinusoidal(timestep, TimeChannels, flipSinToCos: true, freqShift: 0).to(pooled.dtype);
        return (_timestepEmbedder.call(proj) + _textEmbedder.call(pooled)).MoveToOuterDisposeScope();
    }
}
