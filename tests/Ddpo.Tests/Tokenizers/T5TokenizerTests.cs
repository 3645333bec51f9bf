using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using Ddpo.Tests.Support;
using Ddpo.Tokenizers;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Tokenizers;

/// <summary>
/// T5Tokenizer against transformers 4.45.2's slow, legacy T5Tokenizer on refenv/text_encoders/tokenizer_3 (a
/// sentencepiece unigram model with T5's nmt_nfkc character map): every probe (full-width letters, ligature, accents,
/// circled digit, runs of whitespace, upper case and punctuation, truncation) and the padded batch with its mask.
/// </summary>
public sealed class T5TokenizerTests
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "text_encoders");
    private static readonly string TokenizerFolder = Path.Combine(Folder, "tokenizer_3");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static JsonObject IoJson() => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "io.json")))!;

    [Fact]
    public void ReadsTheSpecialIds()
    {
        var tok = T5Tokenizer.FromFolder(TokenizerFolder);
        Assert.Equal(168, tok.VocabSize);
        Assert.Equal(0, tok.PadTokenId);
        Assert.Equal(1, tok.EosTokenId);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void ProbesMatchTransformers(int probe)
    {
        using var scope = NewDisposeScope();
        var text = IoJson()["probes"]![probe]!.GetValue<string>();
        var expected = Io()[$"probe.{probe}.t5"].data<long>().Select(x => (int)x).ToArray();
        var tok = T5Tokenizer.FromFolder(TokenizerFolder);
        Assert.Equal(expected, tok.Encode(text, maxLength: 64).ToArray());
    }

    [Fact]
    public void BatchIdsAndMaskMatchTransformers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var prompts = IoJson()["prompts"]!.AsArray().Select(p => p!.GetValue<string>()).ToArray();
        var tok = T5Tokenizer.FromFolder(TokenizerFolder);
        var (ids, mask) = tok.EncodeBatch(prompts, 32);
        Assert.Equal(ScalarType.Int64, ids.dtype);
        Assert.Equal(io["t5.input_ids"].data<long>().ToArray(), ids.data<long>().ToArray());
        Assert.Equal(io["t5.attention_mask"].data<long>().ToArray(), mask.data<long>().ToArray());
        Assert.Equal(io["t5.input_ids"].shape, ids.shape);
    }

    [Fact]
    public void TruncationKeepsEosLastAndSpecialTokensAreSplitOut()
    {
        var tok = T5Tokenizer.FromFolder(TokenizerFolder);
        var full = tok.Encode("a photo of a cat riding a horse");
        var cut = tok.Encode("a photo of a cat riding a horse", maxLength: 5);
        Assert.Equal(5, cut.Count);
        Assert.Equal(full.Take(4), cut.Take(4));
        Assert.Equal(1, cut[^1]);
        // Special tokens in the text are ids of their own; <extra_id_N> eats the spaces beside it; a final </s> is not doubled.
        var withExtra = tok.Encode("a cat <extra_id_0> a dog</s>");
        Assert.Equal(tok.Encode("a cat").SkipLast(1).Concat([167]).Concat(tok.Encode("a dog").SkipLast(1)).Concat([1]), withExtra);
        Assert.Equal([1], tok.Encode("   "));
    }

    [Fact]
    public void MissingOrCorruptModelIsAClearError()
    {
        var dir = TestPaths.NewTempDir("t5-tok");
        try
        {
            var e = Assert.Throws<ModelLoadException>(() => T5Tokenizer.FromFolder(dir));
            Assert.Contains("spiece.model", e.Message);
            Assert.Contains("not found", e.Message);
            var path = Path.Combine(dir, "spiece.model");
            var bytes = File.ReadAllBytes(Path.Combine(TokenizerFolder, "spiece.model"));
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
            e = Assert.Throws<ModelLoadException>(() => T5Tokenizer.FromFolder(dir));
            Assert.Contains(path, e.Message);
            Assert.Contains("corrupt", e.Message);
            File.WriteAllText(path, "this is not a protobuf");
            e = Assert.Throws<ModelLoadException>(() => T5Tokenizer.FromFolder(dir));
            Assert.Contains(path, e.Message);
            Assert.Throws<ModelLoadException>(() => T5Tokenizer.FromFolder(Path.Combine(dir, "absent")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("tokenizer_config.json", "\"legacy\": true", "\"legacy\": false", "legacy")]
    [InlineData("added_tokens.json", "\"<extra_id_0>\": 167", "\"<extra_id_0>\": 150", "<extra_id_0>")]
    [InlineData("tokenizer_config.json", "\"extra_ids\": 8", "\"extra_ids\": 7", "<extra_id_7>")]
    public void InconsistentTokenizerFilesAreAClearError(string file, string find, string replace, string named)
    {
        var dir = TestPaths.NewTempDir("t5-tok-config");
        try
        {
            foreach (var f in Directory.GetFiles(TokenizerFolder)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            var path = Path.Combine(dir, file);
            var text = File.ReadAllText(path);
            Assert.Contains(find, text);
            File.SetAttributes(path, FileAttributes.Normal);
            File.WriteAllText(path, text.Replace(find, replace));
            var e = Assert.Throws<ModelLoadException>(() => T5Tokenizer.FromFolder(dir));
            Assert.Contains(named, e.Message);
            Assert.Contains(dir, e.Message);
        }
        finally
        {
            foreach (var f in Directory.GetFiles(dir)) File.SetAttributes(f, FileAttributes.Normal);
            Directory.Delete(dir, recursive: true);
        }
    }
}
