namespace Ddpo.Prompts;

/// <summary>Draws uniformly from a fixed list of prompts (ddpo-pytorch's <c>from_file</c>).</summary>
public sealed class ListPromptSource : IPromptSource
{
    private readonly string[] _prompts;
    private readonly string? _metadataKey;
    private readonly Func<string, string>? _format;

    /// <summary>
    /// A source over <paramref name="prompts"/>; when <paramref name="metadataKey"/> is given, each sample's
    /// metadata maps it to the prompt (e.g. <c>animal</c> = "cat").
    /// </summary>
    public ListPromptSource(IEnumerable<string> prompts, string? metadataKey = null, Func<string, string>? format = null)
    {
        _format = format;
        _prompts = prompts.ToArray();
        if (_prompts.Length == 0) throw new ArgumentException("a prompt source needs at least one prompt", nameof(prompts));
        _metadataKey = metadataKey;
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> All => _format is null ? _prompts : _prompts.Select(_format).ToArray();

    /// <inheritdoc/>
    public IReadOnlyList<PromptSample> Samples => _prompts.Select(Sample).ToArray();

    /// <inheritdoc/>
    public PromptSample Next(Random rng) => Sample(_prompts[rng.Next(_prompts.Length)]);

    private PromptSample Sample(string item)
    {
        var metadata = _metadataKey is null
            ? PromptSample.NoMetadata
            : new Dictionary<string, string> { [_metadataKey] = item };
        return new PromptSample(_format is null ? item : _format(item), metadata);
    }
}
