using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// Text-encoder outputs per distinct prompt, kept on the device for one epoch: a prompt drawn several times (group
/// sampling, small prompt sets, the empty negative prompt of every batch) is encoded once, and the prompts missing
/// from a batch are encoded together in one call. The frozen text encoder does not change during an epoch, so the
/// embeddings equal fresh ones (up to the last bit of a batched matrix product). Dispose at the end of the epoch.
/// </summary>
internal sealed class PromptEmbeddingCache(TextToImagePipeline pipeline) : IDisposable
{
    private readonly Dictionary<string, Tensor> _rows = new(StringComparer.Ordinal);

    /// <summary>How many prompts the text encoder has encoded through this cache (distinct prompts seen).</summary>
    public int EncodedCount { get; private set; }

    /// <summary>How many encoder calls were made.</summary>
    public int EncoderCalls { get; private set; }

    /// <summary>The embeddings [B, L, D] of <paramref name="prompts"/> in order, a new tensor the caller owns.</summary>
    public Tensor Get(IReadOnlyList<string> prompts)
    {
        var missing = prompts.Where(p => !_rows.ContainsKey(p)).Distinct(StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            using var encoded = pipeline.EncodePrompts(missing);
            for (int i = 0; i < missing.Count; i++)
            {
                _rows[missing[i]] = encoded[i..(i + 1)].clone().DetachFromDisposeScope();
            }
            EncodedCount += missing.Count;
            EncoderCalls++;
        }
        using var scope = NewDisposeScope();
        return cat(prompts.Select(p => _rows[p]).ToList(), 0).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _rows.Values) t.Dispose();
        _rows.Clear();
    }
}
