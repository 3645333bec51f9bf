using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ddpo.Tokenizers;

internal sealed partial class ClipTokenizer
{
    /// <summary>
    /// Writes a small CLIP-format tokenizer folder (<c>vocab.json</c>, <c>merges.txt</c>,
    /// <c>special_tokens_map.json</c>, <c>tokenizer_config.json</c>) for tiny test models: the 512
    /// byte-level base symbols (with and without <c>&lt;/w&gt;</c>), one token per word (e.g.
    /// <c>cat&lt;/w&gt;</c>) with the merges that build it, then <c>&lt;|startoftext|&gt;</c> and
    /// <c>&lt;|endoftext|&gt;</c>. Each text in <paramref name="words"/> is cleaned and split as
    /// <see cref="Encode"/> does, and each resulting piece becomes one token, so a listed word
    /// encodes to a single id; any other text still encodes, character by character.
    /// </summary>
    public static void WriteWordLevelFiles(IEnumerable<string> words, string directory)
    {
        ArgumentNullException.ThrowIfNull(words);
        var vocab = new List<string>();
        foreach (var c in ClipByteEncoder.VocabularyOrder) vocab.Add(c.ToString());
        foreach (var c in ClipByteEncoder.VocabularyOrder) vocab.Add(c + ClipBpe.EndOfWord);
        var known = new HashSet<string>(vocab, StringComparer.Ordinal);
        var merges = new List<(string, string)>();
        var bpe = new ClipBpe([]);

        var pieces = words
            .SelectMany(w => ClipTextNormalizer.PreTokenize(w ?? throw new ArgumentException("a word is null", nameof(words))))
            .Where(p => p is not (StartOfTextToken or EndOfTextToken))
            .Select(ClipByteEncoder.Encode)
            .Distinct(StringComparer.Ordinal);
        foreach (var piece in pieces)
        {
            // Merges are appended with the lowest priority, so earlier words keep encoding to one
            // token; each round shortens this word's encoding by at least one symbol.
            for (var symbols = bpe.Apply(piece); symbols.Count > 1; symbols = bpe.Apply(piece))
            {
                bpe.AddMerge(symbols[0], symbols[1]);
                merges.Add((symbols[0], symbols[1]));
                if (known.Add(symbols[0] + symbols[1])) vocab.Add(symbols[0] + symbols[1]);
            }
        }
        vocab.Add(StartOfTextToken);
        vocab.Add(EndOfTextToken);

        Directory.CreateDirectory(directory);
        var vocabJson = new JsonObject();
        for (int i = 0; i < vocab.Count; i++) vocabJson[vocab[i]] = i;
        var options = new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, WriteIndented = false };
        File.WriteAllText(Path.Combine(directory, ClipTokenizerFiles.VocabFile), vocabJson.ToJsonString(options));
        File.WriteAllLines(Path.Combine(directory, ClipTokenizerFiles.MergesFile),
            merges.Select(m => $"{m.Item1} {m.Item2}").Prepend("#version: 0.2"));

        var special = new JsonObject
        {
            ["bos_token"] = StartOfTextToken,
            ["eos_token"] = EndOfTextToken,
            ["unk_token"] = EndOfTextToken,
            ["pad_token"] = EndOfTextToken,
        };
        var indented = new JsonSerializerOptions(options) { WriteIndented = true };
        File.WriteAllText(Path.Combine(directory, ClipTokenizerFiles.SpecialTokensFile), special.ToJsonString(indented));
        var config = new JsonObject
        {
            ["tokenizer_class"] = "CLIPTokenizer",
            ["model_max_length"] = DefaultMaxLength,
            ["do_lower_case"] = true,
            ["bos_token"] = StartOfTextToken,
            ["eos_token"] = EndOfTextToken,
            ["unk_token"] = EndOfTextToken,
            ["pad_token"] = EndOfTextToken,
        };
        File.WriteAllText(Path.Combine(directory, ClipTokenizerFiles.TokenizerConfigFile), config.ToJsonString(indented));
    }
}
