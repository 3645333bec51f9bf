using static TorchSharp.torch;

namespace Ddpo.Policies;

/// <summary>
/// Prompt conditionings per distinct prompt, kept on the device for one epoch: a prompt drawn several times (group
/// sampling, small prompt sets, the empty negative prompt of every batch) is encoded once, and the prompts missing
/// from a batch are encoded together in one call. The frozen text encoders do not change during an epoch, so the
/// rows equal fresh ones (up to the last bit of a batched matrix product). Dispose at the end of the epoch.
/// </summary>
internal sealed class ConditioningCache(IDiffusionPolicy policy) : IDisposable
{
    private readonly Dictionary<string, Conditioning> _rows = new(StringComparer.Ordinal);

    /// <summary>How many prompts the text encoders have encoded through this cache (distinct prompts seen).</summary>
    public int EncodedCount { get; private set; }

    /// <summary>How many encoder calls were made.</summary>
    public int EncoderCalls { get; private set; }

    /// <summary>The conditioning of <paramref name="prompts"/> in order, new tensors the caller owns.</summary>
    public Conditioning Get(IReadOnlyList<string> prompts)
    {
        var missing = prompts.Where(p => !_rows.ContainsKey(p)).Distinct(StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            using var encoded = policy.Encode(missing);
            for (int i = 0; i < missing.Count; i++)
            {
                _rows[missing[i]] = encoded.Map(t =>
                {
                    using var row = t[i..(i + 1)];
                    return row.clone();
                }).DetachFromDisposeScope();
            }
            EncodedCount += missing.Count;
            EncoderCalls++;
        }
        using var scope = NewDisposeScope();
        return Conditioning.Concat(prompts.Select(p => _rows[p]).ToList()).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var c in _rows.Values) c.Dispose();
        _rows.Clear();
    }
}
