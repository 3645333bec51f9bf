using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Tokenizers;

/// <summary>
/// transformers' slow <c>T5Tokenizer</c> (legacy mode, SD3's <c>tokenizer_3</c>, FLUX's <c>tokenizer_2</c>): special
/// tokens (<c>&lt;pad&gt;</c>, <c>&lt;/s&gt;</c>, <c>&lt;unk&gt;</c>, <c>&lt;extra_id_N&gt;</c>) are split out of the text
/// first, the rest goes through sentencepiece (normaliser + unigram, <see cref="T5TokenizerUnigram"/>) and
/// <c>&lt;/s&gt;</c> is appended. Written here because Microsoft.ML.Tokenizers 2.0.1's sentencepiece reader cannot take
/// T5's models: its <c>SentencePieceTokenizer.Create</c> on the fixture's unigram <c>spiece.model</c> throws
/// IndexOutOfRangeException in the <c>SentencePieceUnigramModel</c> constructor (measured 2026-12-03).
/// </summary>
internal sealed class T5Tokenizer
{
    /// <summary>The sentencepiece model file name.</summary>
    public const string ModelFile = "spiece.model";

    private readonly T5TokenizerNormalizer _normalizer;
    private readonly T5TokenizerUnigram _unigram;
    // Special tokens matched in the raw text, longest first, with whether they eat the whitespace around them.
    private readonly List<(string Text, int Id, bool LStrip, bool RStrip)> _special;

    private T5Tokenizer(T5TokenizerNormalizer normalizer, T5TokenizerUnigram unigram, List<(string, int, bool, bool)> special,
        int vocabSize, int padId, int eosId)
    {
        _normalizer = normalizer;
        _unigram = unigram;
        _special = special.OrderByDescending(s => s.Item1.Length).ToList();
        VocabSize = vocabSize;
        PadTokenId = padId;
        EosTokenId = eosId;
    }

    /// <summary>The number of ids (sentencepiece pieces plus the <c>&lt;extra_id_N&gt;</c> tokens): transformers' <c>len(tokenizer)</c>.</summary>
    public int VocabSize { get; }

    /// <summary>The padding id (<c>&lt;pad&gt;</c>, 0 for T5).</summary>
    public int PadTokenId { get; }

    /// <summary>The end-of-sequence id (<c>&lt;/s&gt;</c>, 1 for T5).</summary>
    public int EosTokenId { get; }

    /// <summary>
    /// Reads a tokenizer folder: <c>spiece.model</c> (required) and, when present, <c>tokenizer_config.json</c>
    /// (<c>extra_ids</c>, <c>legacy</c>, <c>added_tokens_decoder</c>) and <c>added_tokens.json</c>. Missing or corrupt
    /// files and unsupported settings are a <see cref="ModelLoadException"/> naming the file.
    /// </summary>
    public static T5Tokenizer FromFolder(string directory)
    {
        if (!Directory.Exists(directory)) throw new ModelLoadException($"{directory}: tokenizer folder not found");
        var modelPath = Path.Combine(directory, ModelFile);
        var model = T5TokenizerModelFile.Read(modelPath);
        var normalizer = new T5TokenizerNormalizer(model, modelPath);
        var unigram = new T5TokenizerUnigram(model);
        int pieces = model.Pieces.Count;

        var configPath = Path.Combine(directory, "tokenizer_config.json");
        var config = File.Exists(configPath) ? ReadObject(configPath) : new JsonObject();
        var json = new JsonConfig(config, configPath);
        if (!json.GetBool("legacy", true))
        {
            throw new ModelLoadException($"{configPath}: field 'legacy' = false is not supported (only transformers' legacy T5Tokenizer, as SD3 and FLUX ship, is implemented)");
        }
        int extraIds = json.GetInt("extra_ids", 100);
        if (extraIds < 0) throw new ModelLoadException($"{configPath}: field 'extra_ids' = {extraIds}, expected a non-negative integer");

        var special = new List<(string, int, bool, bool)>();
        for (int id = 0; id < pieces; id++)
        {
            var p = model.Pieces[id];
            if (p.Type is T5TokenizerPiece.Control or T5TokenizerPiece.Unknown) special.Add((p.Text, id, false, false));
        }
        // transformers: <extra_id_i> = len(sp_model) + extra_ids - 1 - i, stripping the whitespace around it.
        for (int i = 0; i < extraIds; i++) special.Add(($"<extra_id_{i}>", pieces + extraIds - 1 - i, true, true));
        try
        {
            AddConfiguredTokens(config["added_tokens_decoder"] as JsonObject, special, pieces, extraIds, configPath);
            CheckAddedTokensFile(Path.Combine(directory, "added_tokens.json"), special);
        }
        catch (InvalidOperationException e)
        {
            throw new ModelLoadException($"{directory}: an added-token entry has a value of the wrong type ({e.Message})", e);
        }
        int vocab = Math.Max(pieces + extraIds, special.Max(s => s.Item2) + 1);
        int pad = model.PadId >= 0 ? model.PadId : throw new ModelLoadException($"{modelPath}: the model has no pad piece (T5 pads with id 0)");
        return new T5Tokenizer(normalizer, unigram, special, vocab, pad, model.EosId);
    }

    /// <summary>Adds <c>tokenizer_config.json</c>'s <c>added_tokens_decoder</c> entries; they must agree with the model's ids.</summary>
    private static void AddConfiguredTokens(JsonObject? decoder, List<(string, int, bool, bool)> special, int pieces, int extraIds, string configPath)
    {
        if (decoder is not null)
        {
            foreach (var (key, node) in decoder)
            {
                if (!int.TryParse(key, out var id) || node is not JsonObject entry || entry["content"]?.GetValue<string>() is not { Length: > 0 } content)
                {
                    throw new ModelLoadException($"{configPath}: added_tokens_decoder entry '{key}' is not {{\"content\": token, ...}} under an integer id");
                }
                var known = special.FindIndex(s => s.Item1 == content);
                if (known >= 0 && special[known].Item2 != id)
                {
                    throw new ModelLoadException($"{configPath}: added token '{content}' has id {id}, but the sentencepiece model and extra_ids give {special[known].Item2}");
                }
                if (known < 0 && (id < pieces + extraIds))
                {
                    throw new ModelLoadException($"{configPath}: added token '{content}' id {id} collides with a sentencepiece piece or extra id");
                }
                if (known < 0) special.Add((content, id, entry["lstrip"]?.GetValue<bool>() ?? false, entry["rstrip"]?.GetValue<bool>() ?? false));
            }
        }
    }

    /// <summary><c>added_tokens.json</c> (token → id), when present, must give the ids already known.</summary>
    private static void CheckAddedTokensFile(string path, List<(string Text, int Id, bool, bool)> special)
    {
        if (!File.Exists(path)) return;
        foreach (var (token, node) in ReadObject(path))
        {
            int id = node?.GetValue<int>() ?? throw new ModelLoadException($"{path}: token '{token}' has no id");
            var known = special.FindIndex(s => s.Text == token);
            if (known < 0 || special[known].Id != id)
            {
                throw new ModelLoadException($"{path}: token '{token}' = {id} does not match the sentencepiece model, extra_ids and tokenizer_config.json");
            }
        }
    }

    /// <summary>
    /// The ids of <paramref name="text"/> followed by <c>&lt;/s&gt;</c> (not repeated when the text already ends with
    /// it). With <paramref name="maxLength"/> the text's ids are cut to maxLength − 1 first, so <c>&lt;/s&gt;</c> stays last.
    /// </summary>
    public IReadOnlyList<int> Encode(string text, int? maxLength = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (maxLength is < 1) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "the maximum length must leave room for </s>");
        var ids = Tokenize(text);
        if (maxLength is int max && ids.Count > max - 1) ids.RemoveRange(max - 1, ids.Count - (max - 1));
        if (ids.Count == 0 || ids[^1] != EosTokenId) ids.Add(EosTokenId);
        return ids;
    }

    /// <summary>
    /// Token ids [B, maxLength] (int64) of <paramref name="texts"/>, truncated as <see cref="Encode"/> and padded with
    /// <see cref="PadTokenId"/>, and the attention mask (1 on tokens, 0 on padding), as transformers'
    /// <c>padding="max_length", truncation=True</c>.
    /// </summary>
    public (Tensor InputIds, Tensor AttentionMask) EncodeBatch(IReadOnlyList<string> texts, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (maxLength < 1) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "expected a positive length");
        var ids = new long[texts.Count * maxLength];
        var mask = new long[texts.Count * maxLength];
        Array.Fill(ids, PadTokenId);
        for (int b = 0; b < texts.Count; b++)
        {
            var encoded = Encode(texts[b], maxLength);
            for (int i = 0; i < encoded.Count; i++)
            {
                ids[b * maxLength + i] = encoded[i];
                mask[b * maxLength + i] = 1;
            }
        }
        return (torch.tensor(ids, [texts.Count, maxLength]), torch.tensor(mask, [texts.Count, maxLength]));
    }

    /// <summary>Splits out the special tokens (eating whitespace where they strip), then sentencepiece on the rest.</summary>
    private List<int> Tokenize(string text)
    {
        var ids = new List<int>();
        int pos = 0, chunkStart = 0;
        bool stripNext = false;
        void Flush(int end, bool stripRight)
        {
            var chunk = text[chunkStart..end];
            if (stripNext) chunk = chunk.TrimStart();
            if (stripRight) chunk = chunk.TrimEnd();
            if (chunk.Length > 0) ids.AddRange(_unigram.Encode(_normalizer.Normalize(chunk)));
        }
        while (pos < text.Length)
        {
            var match = _special.FirstOrDefault(s => string.CompareOrdinal(text, pos, s.Text, 0, s.Text.Length) == 0 && pos + s.Text.Length <= text.Length);
            if (match.Text is null)
            {
                pos++;
                continue;
            }
            Flush(pos, match.LStrip);
            ids.Add(match.Id);
            pos += match.Text.Length;
            chunkStart = pos;
            stripNext = match.RStrip;
        }
        Flush(text.Length, false);
        return ids;
    }

    private static JsonObject ReadObject(string path)
    {
        try
        {
            return StrictJson.Parse(Utf8Text.ReadFile(path, message => new ModelLoadException(message))) as JsonObject
                ?? throw new ModelLoadException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"{path}: not valid JSON ({e.Message})", e);
        }
        catch (InvalidOperationException e)
        {
            throw new ModelLoadException($"{path}: unexpected value type ({e.Message})", e);
        }
    }
}
