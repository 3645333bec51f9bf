using System.Collections.Concurrent;
using Ddpo.Models.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Tokenizers;

/// <summary>
/// The CLIP byte-level BPE tokenizer (openai/CLIP <c>simple_tokenizer.py</c>, as used by Stable
/// Diffusion through transformers' <c>CLIPTokenizer</c>), read from a Hugging Face tokenizer folder
/// (<c>vocab.json</c>, <c>merges.txt</c>, optional <c>special_tokens_map.json</c> /
/// <c>tokenizer_config.json</c> for the padding token). Thread-safe.
/// </summary>
/// <remarks>
/// Differences from the Python reference: <c>ftfy.fix_text</c> is not applied, and HTML entities
/// are decoded by .NET's <see cref="System.Net.WebUtility.HtmlDecode(string)"/> (identical for
/// well-formed entities).
/// </remarks>
internal sealed partial class ClipTokenizer
{
    /// <summary>The start-of-text token.</summary>
    public const string StartOfTextToken = "<|startoftext|>";

    /// <summary>The end-of-text token (also the default padding token).</summary>
    public const string EndOfTextToken = "<|endoftext|>";

    /// <summary>The context length of Stable Diffusion's text encoders.</summary>
    public const int DefaultMaxLength = 77;

    private const int CacheLimit = 100_000;

    private readonly Dictionary<string, int> _vocab;
    private readonly ClipBpe _bpe;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    // A pad token that is not one of CLIP's own special tokens ("!" in SD 2.x / SDXL / SD3 tokenizer_2): transformers
    // registers it as an added token, so it is split out of the raw text before BPE and always maps to its own id
    // ("lighting!" is "lighting</w>" + id 0, not "lighting</w>" + "!</w>").
    private readonly string? _addedPadToken;

    private ClipTokenizer(Dictionary<string, int> vocab, ClipBpe bpe, int padTokenId, string? addedPadToken)
    {
        _vocab = vocab;
        _bpe = bpe;
        _addedPadToken = addedPadToken;
        BosTokenId = vocab[StartOfTextToken];
        EosTokenId = vocab[EndOfTextToken];
        PadTokenId = padTokenId;
        VocabSize = vocab.Values.Max() + 1;
    }

    /// <summary>The id of <c>&lt;|startoftext|&gt;</c>, first in every encoding.</summary>
    public int BosTokenId { get; }

    /// <summary>The id of <c>&lt;|endoftext|&gt;</c>, last in every encoding.</summary>
    public int EosTokenId { get; }

    /// <summary>The padding id: <c>&lt;|endoftext|&gt;</c> by default (Stable Diffusion 1.x), "!" (id 0) for SD 2.x tokenizers.</summary>
    public int PadTokenId { get; }

    /// <summary>Number of ids (largest id + 1): 49408 for the real CLIP vocabulary.</summary>
    public int VocabSize { get; }

    /// <summary>
    /// Loads a tokenizer folder. Missing or corrupt <c>vocab.json</c> / <c>merges.txt</c> (or a
    /// vocabulary without the byte symbols and special tokens) is a <see cref="ModelLoadException"/>
    /// naming the file.
    /// </summary>
    public static ClipTokenizer FromFolder(string directory)
    {
        if (!Directory.Exists(directory)) throw new ModelLoadException($"{directory}: tokenizer folder not found");
        var vocabPath = Path.Combine(directory, ClipTokenizerFiles.VocabFile);
        var vocab = ClipTokenizerFiles.ReadVocab(vocabPath);
        var required = ClipByteEncoder.VocabularyOrder
            .SelectMany(c => new[] { c.ToString(), c + ClipBpe.EndOfWord })
            .Append(StartOfTextToken).Append(EndOfTextToken);
        var absent = required.Where(t => !vocab.ContainsKey(t)).ToList();
        if (absent.Count > 0)
        {
            throw new ModelLoadException(
                $"{vocabPath}: not a CLIP byte-level vocabulary: {absent.Count} required tokens are missing " +
                $"(e.g. {string.Join(", ", absent.Take(5).Select(t => $"\"{t}\""))})");
        }
        var merges = ClipTokenizerFiles.ReadMerges(Path.Combine(directory, ClipTokenizerFiles.MergesFile), vocab, vocabPath);
        int padId = vocab[EndOfTextToken];
        string? addedPad = null;
        if (ClipTokenizerFiles.ReadPadToken(directory) is var (padToken, padSource))
        {
            if (!vocab.TryGetValue(padToken, out padId))
            {
                throw new ModelLoadException($"{padSource}: pad_token \"{padToken}\" is not a token of {vocabPath}");
            }
            if (padToken is not (StartOfTextToken or EndOfTextToken)) addedPad = padToken;
        }
        return new ClipTokenizer(vocab, new ClipBpe(merges), padId, addedPad);
    }

    /// <summary>Token ids of <paramref name="text"/>: <see cref="BosTokenId"/>, the BPE tokens, <see cref="EosTokenId"/> (no truncation or padding).</summary>
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int> { BosTokenId };
        var parts = _addedPadToken is null ? [text] : text.Split(_addedPadToken);
        for (int p = 0; p < parts.Length; p++)
        {
            if (p > 0) ids.Add(PadTokenId);
            foreach (var piece in ClipTextNormalizer.PreTokenize(parts[p]))
            {
                ids.AddRange(EncodePiece(piece));
            }
        }
        ids.Add(EosTokenId);
        return ids;
    }

    /// <summary>
    /// Encodes a batch as Stable Diffusion does (<c>padding="max_length", truncation=True</c>):
    /// int64 [B, <paramref name="maxLength"/>] on the CPU; a longer encoding is cut to its first
    /// <paramref name="maxLength"/> - 1 ids followed by <see cref="EosTokenId"/>; shorter ones are
    /// padded with <see cref="PadTokenId"/>.
    /// </summary>
    public Tensor EncodeBatch(IReadOnlyList<string> texts, int maxLength = DefaultMaxLength)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (maxLength < 2) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "maxLength must be at least 2 (start and end tokens)");
        var data = new long[texts.Count * maxLength];
        for (int b = 0; b < texts.Count; b++)
        {
            var ids = Encode(texts[b]);
            var row = data.AsSpan(b * maxLength, maxLength);
            row.Fill(PadTokenId);
            int n = Math.Min(ids.Count, maxLength);
            for (int i = 0; i < n; i++) row[i] = ids[i];
            if (ids.Count > maxLength) row[maxLength - 1] = EosTokenId;
        }
        return tensor(data, [texts.Count, maxLength], ScalarType.Int64);
    }

    private int[] EncodePiece(string piece)
    {
        if (piece is StartOfTextToken or EndOfTextToken) return [_vocab[piece]];
        if (_cache.TryGetValue(piece, out var cached)) return cached;
        // Every byte symbol (with and without </w>) and every merge result is in the vocabulary
        // (checked when loading), so the lookups below cannot fail.
        var ids = _bpe.Apply(ClipByteEncoder.Encode(piece)).Select(s => _vocab[s]).ToArray();
        if (_cache.Count >= CacheLimit) _cache.Clear();
        _cache[piece] = ids;
        return ids;
    }
}
