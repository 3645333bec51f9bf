using System.IO.Compression;
using Ddpo.Models.Loading;
using static TorchSharp.torch;

namespace Ddpo.Tokenizers;

/// <summary>
/// open_clip's <c>SimpleTokenizer</c> + <c>tokenize</c> (HPSv2's fork, = openai/CLIP's): the vocabulary is built
/// from the merges file (<c>bpe_simple_vocab_16e6.txt.gz</c>: 256 byte symbols, the same with <c>&lt;/w&gt;</c>, the
/// merges, then <c>&lt;start_of_text&gt;</c> and <c>&lt;end_of_text&gt;</c>); text is cleaned, lower-cased and split as
/// <see cref="ClipTextNormalizer"/> does (ftfy treated as identity), then byte-level BPE (<see cref="ClipBpe"/>).
/// </summary>
internal sealed class OpenClipTokenizer
{
    /// <summary>open_clip's start token.</summary>
    public const string StartOfText = "<start_of_text>";

    /// <summary>open_clip's end token (the largest id, which the text tower pools at).</summary>
    public const string EndOfText = "<end_of_text>";

    // SimpleTokenizer keeps merges[1 : 49152 - 256 - 2 + 1] (line 0 is a version header).
    private const int MaxMerges = 49152 - 256 - 2;

    private readonly Dictionary<string, int> _vocab;
    private readonly ClipBpe _bpe;

    private OpenClipTokenizer(Dictionary<string, int> vocab, ClipBpe bpe)
    {
        _vocab = vocab;
        _bpe = bpe;
        StartId = vocab[StartOfText];
        EndId = vocab[EndOfText];
        VocabSize = vocab.Count == 0 ? 0 : vocab.Values.Max() + 1;
    }

    /// <summary>Id of <see cref="StartOfText"/>.</summary>
    public int StartId { get; }

    /// <summary>Id of <see cref="EndOfText"/>.</summary>
    public int EndId { get; }

    /// <summary>Number of ids (49408 for the real merges).</summary>
    public int VocabSize { get; }

    /// <summary>Reads a gzip'd merges file (<c>.txt.gz</c>) or a plain one (<c>.txt</c>).</summary>
    public static OpenClipTokenizer FromMergesFile(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: BPE merges file not found (open_clip's bpe_simple_vocab_16e6.txt.gz)");
        string text;
        try
        {
            using var file = File.OpenRead(path);
            using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
            using var reader = new StreamReader(stream, new System.Text.UTF8Encoding(false, true));
            text = reader.ReadToEnd();
        }
        catch (Exception e) when (e is InvalidDataException or System.Text.DecoderFallbackException)
        {
            throw new ModelLoadException($"{path}: not a gzip'd UTF-8 merges file ({e.Message})", e);
        }
        var lines = text.Split('\n');
        var merges = new List<(string, string)>();
        for (int i = 1; i < lines.Length && merges.Count < MaxMerges; i++)
        {
            if (lines[i].Length == 0 && i == lines.Length - 1) break; // the final newline
            var parts = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2) throw new ModelLoadException($"{path}: line {i + 1} is not a merge of two symbols: \"{lines[i]}\"");
            merges.Add((parts[0], parts[1]));
        }
        return FromVocabulary(merges, path);
    }

    // Builds the id table as SimpleTokenizer does: ids are positions in the vocabulary list, and a repeated token
    // (absent from real files) keeps its last position.
    private static OpenClipTokenizer FromVocabulary(List<(string, string)> merges, string path)
    {
        var list = new List<string>();
        foreach (var c in ClipByteEncoder.VocabularyOrder) list.Add(c.ToString());
        foreach (var c in ClipByteEncoder.VocabularyOrder) list.Add(c + ClipBpe.EndOfWord);
        foreach (var (a, b) in merges) list.Add(a + b);
        list.Add(StartOfText);
        list.Add(EndOfText);
        var vocab = new Dictionary<string, int>();
        for (int i = 0; i < list.Count; i++) vocab[list[i]] = i;
        foreach (var (a, b) in merges)
        {
            if (!vocab.ContainsKey(a) || !vocab.ContainsKey(b)) throw new ModelLoadException($"{path}: merge \"{a} {b}\" uses a symbol that no earlier merge produced");
        }
        return new OpenClipTokenizer(vocab, new ClipBpe(merges));
    }

    /// <summary>The BPE ids of <paramref name="text"/> (no start/end tokens).</summary>
    public List<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        foreach (var piece in ClipTextNormalizer.PreTokenize(text))
        {
            foreach (var symbol in _bpe.Apply(ClipByteEncoder.Encode(piece))) ids.Add(_vocab[symbol]);
        }
        return ids;
    }

    /// <summary>
    /// open_clip's <c>tokenize</c>: int64 [B, <paramref name="contextLength"/>] on the CPU, each row start + BPE + end,
    /// cut to the context (the last id then being the end token) and zero-padded.
    /// </summary>
    public Tensor Tokenize(IReadOnlyList<string> texts, int contextLength = 77)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        var data = new long[texts.Count * contextLength];
        for (int b = 0; b < texts.Count; b++)
        {
            var ids = new List<int> { StartId };
            ids.AddRange(Encode(texts[b]));
            ids.Add(EndId);
            if (ids.Count > contextLength)
            {
                ids.RemoveRange(contextLength, ids.Count - contextLength);
                ids[^1] = EndId;
            }
            for (int i = 0; i < ids.Count; i++) data[b * contextLength + i] = ids[i];
        }
        return tensor(data, [texts.Count, contextLength], ScalarType.Int64);
    }
}
