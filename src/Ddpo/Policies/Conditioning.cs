using static TorchSharp.torch;

namespace Ddpo.Policies;

/// <summary>
/// What a model family's denoiser is conditioned on for a batch of prompts, as named tensors whose first dimension is
/// the batch: Stable Diffusion's text-encoder states (<c>prompt_embeds</c>); SD3's and FLUX's add pooled embeddings
/// (<c>prompt_pooled</c>), SDXL's its time ids. The trainer selects, slices and concatenates rows without knowing
/// the parts. Names start with <c>prompt_</c>: an unconditional batch's parts are stored as <c>negative_...</c>.
/// The owner disposes the tensors.
/// </summary>
internal sealed class Conditioning : IDisposable
{
    private readonly Dictionary<string, Tensor> _parts;

    /// <summary>A conditioning of <paramref name="parts"/> (each [B, ...] with the same B); takes ownership.</summary>
    public Conditioning(IReadOnlyDictionary<string, Tensor> parts)
    {
        if (parts.Count == 0) throw new ArgumentException("a conditioning needs at least one tensor");
        _parts = new Dictionary<string, Tensor>(parts, StringComparer.Ordinal);
        Count = _parts.Values.First().shape[0];
        foreach (var (name, t) in _parts)
        {
            if (!name.StartsWith(Prefix, StringComparison.Ordinal)) throw new ArgumentException($"conditioning part '{name}' must start with '{Prefix}'");
            if (t.dim() == 0 || t.shape[0] != Count) throw new ArgumentException($"conditioning part '{name}' has shape [{string.Join(", ", t.shape)}], expected a first dimension of {Count}");
        }
    }

    /// <summary>The prefix every part name starts with.</summary>
    public const string Prefix = "prompt_";

    /// <summary>The prefix of an unconditional batch's parts when stored beside a conditional one.</summary>
    public const string NegativePrefix = "negative_";

    /// <summary>Rows (prompts).</summary>
    public long Count { get; }

    /// <summary>The parts by name.</summary>
    public IReadOnlyDictionary<string, Tensor> Parts => _parts;

    /// <summary>The part <paramref name="name"/>.</summary>
    public Tensor this[string name] => _parts.TryGetValue(name, out var t) ? t
        : throw new KeyNotFoundException($"the conditioning has no part '{name}' (it has {string.Join(", ", _parts.Keys)})");

    /// <summary>A new conditioning of the same parts mapped by <paramref name="map"/> (each result a new tensor).</summary>
    public Conditioning Map(Func<Tensor, Tensor> map) => new(_parts.ToDictionary(kv => kv.Key, kv => map(kv.Value)));

    /// <summary>The rows at <paramref name="indices"/> (int64, on the parts' device), copied.</summary>
    public Conditioning Select(Tensor indices) => Map(t => t.index_select(0, indices));

    /// <summary>Rows [<paramref name="start"/>, <paramref name="end"/>) as views.</summary>
    public Conditioning Slice(long start, long end) => Map(t => t[TensorIndex.Slice(start, end)]);

    /// <summary>The parts as aliases (views sharing storage), to hand to an owner of its own.</summary>
    public Conditioning Alias() => Map(t => t.alias());

    /// <summary>A one-row conditioning repeated to <paramref name="count"/> rows (contiguous).</summary>
    public Conditioning Expand(long count) => Map(t =>
    {
        // The expanded view is freed here, not left to the garbage collector (callers may hold no dispose scope).
        using var view = t.expand([count, .. t.shape[1..]]);
        return view.contiguous();
    });

    /// <summary>The rows of <paramref name="batches"/> one after the other (the same parts in each).</summary>
    public static Conditioning Concat(IReadOnlyList<Conditioning> batches) =>
        new(batches[0]._parts.Keys.ToDictionary(k => k, k => cat(batches.Select(b => b[k]).ToList(), 0)));

    /// <summary>The parts under the names a run folder stores an unconditional batch with (<c>negative_...</c>).</summary>
    public IReadOnlyDictionary<string, Tensor> AsNegative() =>
        _parts.ToDictionary(kv => NegativePrefix + kv.Key[Prefix.Length..], kv => kv.Value);

    /// <summary>
    /// The conditional and unconditional parts of stored tensors (<c>prompt_...</c> and <c>negative_...</c>) moved
    /// to <paramref name="device"/>; the unconditional one is null when none is stored.
    /// </summary>
    public static (Conditioning Conditional, Conditioning? Unconditional) FromStored(IReadOnlyDictionary<string, Tensor> tensors, Device device)
    {
        var positive = tensors.Where(kv => kv.Key.StartsWith(Prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value.to(device));
        var negative = tensors.Where(kv => kv.Key.StartsWith(NegativePrefix, StringComparison.Ordinal))
            .ToDictionary(kv => Prefix + kv.Key[NegativePrefix.Length..], kv => kv.Value.to(device));
        return (new Conditioning(positive), negative.Count == 0 ? null : new Conditioning(negative));
    }

    /// <summary>Moves the tensors out of the current dispose scope (they outlive it).</summary>
    public Conditioning MoveToOuterDisposeScope()
    {
        foreach (var t in _parts.Values) t.MoveToOuterDisposeScope();
        return this;
    }

    /// <summary>Detaches the tensors from every dispose scope.</summary>
    public Conditioning DetachFromDisposeScope()
    {
        foreach (var t in _parts.Values) t.DetachFromDisposeScope();
        return this;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _parts.Values) t.Dispose();
    }
}
