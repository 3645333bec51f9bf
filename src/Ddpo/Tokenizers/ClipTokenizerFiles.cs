using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Models.Loading;

namespace Ddpo.Tokenizers;

/// <summary>Reads and checks the Hugging Face CLIP tokenizer files (<c>vocab.json</c>, <c>merges.txt</c>, special-token maps).</summary>
internal static class ClipTokenizerFiles
{
    /// <summary>The vocabulary file name.</summary>
    public const string VocabFile = "vocab.json";

    /// <summary>The merges file name.</summary>
    public const string MergesFile = "merges.txt";

    /// <summary>The special-tokens file name.</summary>
    public const string SpecialTokensFile = "special_tokens_map.json";

    /// <summary>The tokenizer configuration file name.</summary>
    public const string TokenizerConfigFile = "tokenizer_config.json";

    /// <summary>Reads <c>vocab.json</c>: a JSON object from token to distinct non-negative id.</summary>
    public static Dictionary<string, int> ReadVocab(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: tokenizer vocabulary file not found");
        JsonObject root;
        try
        {
            root = StrictJson.Parse(Utf8Text.ReadFile(path, message => new ModelLoadException(message))) as JsonObject
                ?? throw new ModelLoadException($"{path}: corrupt vocabulary: expected a JSON object mapping tokens to ids");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"{path}: corrupt vocabulary: not valid JSON ({e.Message})", e);
        }
        var vocab = new Dictionary<string, int>(root.Count, StringComparer.Ordinal);
        var seen = new Dictionary<int, string>();
        foreach (var (token, node) in root)
        {
            int id;
            try
            {
                id = node?.GetValue<int>() ?? throw new FormatException();
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new ModelLoadException($"{path}: corrupt vocabulary: token \"{token}\" has id {node?.ToJsonString() ?? "null"}, expected an integer");
            }
            if (id < 0) throw new ModelLoadException($"{path}: corrupt vocabulary: token \"{token}\" has negative id {id}");
            if (seen.TryGetValue(id, out var other))
            {
                throw new ModelLoadException($"{path}: corrupt vocabulary: tokens \"{other}\" and \"{token}\" share id {id}");
            }
            seen[id] = token;
            vocab[token] = id;
        }
        if (vocab.Count == 0) throw new ModelLoadException($"{path}: corrupt vocabulary: no tokens");
        return vocab;
    }

    /// <summary>
    /// Reads <c>merges.txt</c>: an optional <c>#version</c> header, then one merge per line, two
    /// symbols separated by one space. Every merge result must be a token of <paramref name="vocab"/>.
    /// </summary>
    public static List<(string, string)> ReadMerges(string path, IReadOnlyDictionary<string, int> vocab, string vocabPath)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: tokenizer merges file not found");
        var merges = new List<(string, string)>();
        int lineNumber = 0;
        foreach (var raw in Utf8Text.ReadFile(path, message => new ModelLoadException(message)).Split('\n'))
        {
            lineNumber++;
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            {
                throw new ModelLoadException($"{path}: corrupt merges file: line {lineNumber} is \"{Shorten(line)}\", expected two symbols separated by one space");
            }
            if (!vocab.ContainsKey(parts[0] + parts[1]))
            {
                throw new ModelLoadException($"{path}: corrupt merges file: line {lineNumber} merges to \"{parts[0] + parts[1]}\", which is not a token of {vocabPath}");
            }
            merges.Add((parts[0], parts[1]));
        }
        return merges;
    }

    /// <summary>
    /// The padding token named by <c>special_tokens_map.json</c> or else <c>tokenizer_config.json</c>
    /// (as a string or as an object with <c>content</c>), or null when neither names one.
    /// </summary>
    public static (string Token, string Source)? ReadPadToken(string directory)
    {
        foreach (var name in new[] { SpecialTokensFile, TokenizerConfigFile })
        {
            var path = Path.Combine(directory, name);
            if (!File.Exists(path)) continue;
            JsonObject? root;
            try
            {
                root = StrictJson.Parse(Utf8Text.ReadFile(path, message => new ModelLoadException(message))) as JsonObject;
            }
            catch (JsonException e)
            {
                throw new ModelLoadException($"{path}: not valid JSON ({e.Message})", e);
            }
            var node = root?["pad_token"];
            if (node is null) continue;
            var token = node is JsonObject obj ? obj["content"] : node;
            try
            {
                var text = token?.GetValue<string>();
                if (!string.IsNullOrEmpty(text)) return (text, path);
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                // fall through to the error below
            }
            throw new ModelLoadException($"{path}: field 'pad_token' = {node.ToJsonString()} is not a token (expected a string or {{\"content\": string}})");
        }
        return null;
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..60] + "...";
}
