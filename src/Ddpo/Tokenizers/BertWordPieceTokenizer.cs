using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using Microsoft.ML.Tokenizers;

namespace Ddpo.Tokenizers;

/// <summary>
/// The WordPiece tokenizer of a BERT model (<c>vocab.txt</c>; basic tokenization, optional lower-casing and
/// accent stripping as transformers' <c>BertTokenizer</c>), on Microsoft.ML.Tokenizers' <see cref="BertTokenizer"/>.
/// Encodes as bert-score's <c>sent_encode</c>: the text stripped, <c>[CLS] tokens [SEP]</c>, truncated to
/// <see cref="MaxLength"/> ids.
/// </summary>
internal sealed class BertWordPieceTokenizer
{
    private readonly BertTokenizer _tokenizer;

    private BertWordPieceTokenizer(BertTokenizer tokenizer, int maxLength)
    {
        if (maxLength < 2) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "must be at least 2 ([CLS] and [SEP])");
        _tokenizer = tokenizer;
        MaxLength = maxLength;
    }

    /// <summary>The longest id sequence produced, special tokens included.</summary>
    public int MaxLength { get; }

    /// <summary>The id of <c>[CLS]</c>.</summary>
    public int ClsId => _tokenizer.ClassificationTokenId;

    /// <summary>The id of <c>[SEP]</c>.</summary>
    public int SepId => _tokenizer.SeparatorTokenId;

    /// <summary>The id of <c>[PAD]</c>.</summary>
    public int PadId => _tokenizer.PaddingTokenId;

    /// <summary>
    /// Reads <c>vocab.txt</c> from a model folder; <c>tokenizer_config.json</c>, when present, gives
    /// <c>do_lower_case</c> (default true) and <c>strip_accents</c> (default: follows lower-casing).
    /// </summary>
    public static BertWordPieceTokenizer FromFolder(string directory, int maxLength = 512)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        var vocab = Path.Combine(directory, "vocab.txt");
        if (!File.Exists(vocab))
        {
            throw new ModelLoadException($"{directory}: no vocab.txt (a WordPiece vocabulary is needed for the BERT tokenizer)");
        }
        bool lower = true;
        bool? stripAccents = null;
        var configPath = Path.Combine(directory, "tokenizer_config.json");
        if (File.Exists(configPath))
        {
            var json = JsonConfig.Load(configPath);
            lower = json.GetBool("do_lower_case", true);
            if (json.Root["strip_accents"] is JsonValue v && v.TryGetValue<bool>(out var b)) stripAccents = b;
        }
        // Checked as strict UTF-8 here: the tokenizer library would read invalid bytes as U+FFFD tokens.
        var text = Utf8Text.ReadFile(vocab, message => new ModelLoadException(message));
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text));
        try
        {
            return FromVocab(stream, lower, stripAccents ?? lower, maxLength);
        }
        // Microsoft.ML.Tokenizers rejects a vocabulary without [CLS], [SEP], [PAD], [UNK] or with repeated tokens.
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw new ModelLoadException($"{vocab}: not a usable WordPiece vocabulary ({e.Message}); expected one token a line, with [CLS], [SEP], [PAD] and [UNK]", e);
        }
    }

    /// <summary>A tokenizer over a <c>vocab.txt</c> stream (one token a line, the line number is the id).</summary>
    public static BertWordPieceTokenizer FromVocab(Stream vocab, bool lowerCase, bool stripAccents, int maxLength = 512)
    {
        var options = new BertOptions
        {
            LowerCaseBeforeTokenization = lowerCase,
            RemoveNonSpacingMarks = stripAccents,
            ApplyBasicTokenization = true,
            SplitOnSpecialTokens = true,
        };
        return new BertWordPieceTokenizer(BertTokenizer.Create(vocab, options), maxLength);
    }

    /// <summary>Ids of <paramref name="text"/>: <c>[CLS]</c>, the WordPiece ids of the stripped text (truncated), <c>[SEP]</c>.</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        var ids = trimmed.Length == 0 ? [] : _tokenizer.EncodeToIds(trimmed, false, true, true);
        int keep = Math.Min(ids.Count, MaxLength - 2);
        var result = new int[keep + 2];
        result[0] = ClsId;
        for (int i = 0; i < keep; i++) result[i + 1] = ids[i];
        result[^1] = SepId;
        return result;
    }
}
