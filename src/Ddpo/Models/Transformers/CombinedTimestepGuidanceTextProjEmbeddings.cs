using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Ddpo.Models.Transformers;

/// <summary>
/// diffusers <c>CombinedTimestepGuidanceTextProjEmbeddings</c> (FLUX.1-dev): <c>timestep_embedder(sinusoid_256(t)) +
/// guidance_embedder(sinusoid_256(g)) + text_embedder(pooled)</c>, the sinusoids as in
/// <see cref="CombinedTimestepTextProjEmbeddings"/> (float32, flip_sin_to_cos, shift 0), cast to the pooled dtype.
/// </summary>
internal sealed class CombinedTimestepGuidanceTextProjEmbeddings : nn.Module
{
    private const int TimeChannels = 256;
    [ComponentName(Name = "timestep_embedder")] private readonly TimestepEmbedding _timestepEmbedder;
    [ComponentName(Name = "guidance_embedder")] private readonly TimestepEmbedding _guidanceEmbedder;
    [ComponentName(Name = "text_embedder")] private readonly TimestepEmbedding _textEmbedder;

    /// <summary>Creates the layer.</summary>
    public CombinedTimestepGuidanceTextProjEmbeddings(int embeddingDim, int pooledProjectionDim, ModuleOptions o)
        : base(nameof(CombinedTimestepGuidanceTextProjEmbeddings))
    {
        _timestepEmbedder = new TimestepEmbedding(TimeChannels, embeddingDim, o);
        _guidanceEmbedder = new TimestepEmbedding(TimeChannels, embeddingDim, o);
        _textEmbedder = new TimestepEmbedding(pooledProjectionDim, embeddingDim, o);
        RegisterComponents();
    }

    /// <summary>The conditioning [B, D] for float timesteps [B], guidance [B] and pooled text [B, pooled_projection_dim].</summary>
    public Tensor Forward(Tensor timestep, Tensor guidance, Tensor pooled)
    {
        using var scope = NewDisposeScope();
        var tProj = TimestepEmbedding.Sinusoidal(timestep, TimeChannels, flipSinToCos: true, freqShift: 0).to(pooled.dtype);
        var gProj = TimestepEmbedding.Sinusoidal(guidance, TimeChannels, flipSinToCos: true, freqShift: 0).to(pooled.dtype);
        var timeGuidance = _timestepEmbedder.call(tProj) + _guidanceEmbedder.call(gProj);
        return (timeGuidance + _textEmbedder.call(pooled)).MoveToOuterDisposeScope();
    }
}
