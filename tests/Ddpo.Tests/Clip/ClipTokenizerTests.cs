using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using Ddpo.Tests.Support;
using Ddpo.Tokenizers;
using Xunit;

namespace Ddpo.Tests.Clip;

/// <summary>The CLIP BPE tokenizer against openai/CLIP's reference ids (real vocabulary from ../shared).</summary>
public sealed class ClipTokenizerTests
{
    private const string NoShared = "../shared/fixtures/clip_tokenizer (the third-party CLIP vocabulary) is not present";

    private static string TokenizerDir => Path.Combine(TestPaths.Shared!, "clip_tokenizer");

    private static readonly Lazy<ClipTokenizer> RealTokenizer = new(() => ClipTokenizer.FromFolder(TokenizerDir));

    [SkippableFact]
    public void EncodeMatchesReferenceIdsForEveryText()
    {
        Skip.If(TestPaths.Shared is null, NoShared);
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerDir, "expected_ids.json")))!;
        var tokenizer = RealTokenizer.Value;
        Assert.Equal(expected["bos"]!.GetValue<int>(), tokenizer.BosTokenId);
        Assert.Equal(expected["eos"]!.GetValue<int>(), tokenizer.EosTokenId);
        Assert.Equal(49408, tokenizer.VocabSize);
        Assert.Equal(tokenizer.EosTokenId, tokenizer.PadTokenId);
        var cases = expected["cases"]!.AsArray();
        Assert.True(cases.Count >= 10);
        foreach (var c in cases)
        {
            var text = c!["text"]!.GetValue<string>();
            var ids = c["ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
            Assert.True(ids.SequenceEqual(tokenizer.Encode(text)),
                $"text {text[..Math.Min(40, text.Length)]}: expected [{string.Join(",", ids)}], got [{string.Join(",", tokenizer.Encode(text))}]");
        }
    }

    [SkippableFact]
    public void EncodeBatchTruncatesKeepingEndTokenAndPads()
    {
        Skip.If(TestPaths.Shared is null, NoShared);
        var tokenizer = RealTokenizer.Value;
        var longText = string.Join(" ", Enumerable.Repeat("word", 90));
        var shortIds = tokenizer.Encode("a cat");
        var longIds = tokenizer.Encode(longText);
        Assert.True(longIds.Count > 77);

        using var batch = tokenizer.EncodeBatch(["a cat", longText]);
        Assert.Equal(new long[] { 2, 77 }, batch.shape);
        Assert.Equal(TorchSharp.torch.ScalarType.Int64, batch.dtype);
        var rows = batch.data<long>().ToArray();
        var row0 = rows[..77];
        var row1 = rows[77..];
        Assert.Equal(shortIds.Select(i => (long)i), row0[..shortIds.Count]);
        Assert.All(row0[shortIds.Count..], id => Assert.Equal(tokenizer.PadTokenId, id));
        Assert.Equal(longIds.Take(76).Select(i => (long)i), row1[..76]);
        Assert.Equal(tokenizer.EosTokenId, row1[76]);

        using var shorter = tokenizer.EncodeBatch(["a cat"], maxLength: 3);
        Assert.Equal(new long[] { tokenizer.BosTokenId, shortIds[1], tokenizer.EosTokenId }, shorter.data<long>().ToArray());
    }

    [SkippableFact]
    public void PadTokenComesFromSpecialTokensMap()
    {
        Skip.If(TestPaths.Shared is null, NoShared);
        var dir = TestPaths.NewTempDir("clip-tok-sd2");
        try
        {
            File.Copy(Path.Combine(TokenizerDir, "vocab.json"), Path.Combine(dir, "vocab.json"));
            File.Copy(Path.Combine(TokenizerDir, "merges.txt"), Path.Combine(dir, "merges.txt"));
            // Stable Diffusion 2.x writes the pad token as an object.
            File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"),
                "{\"pad_token\": {\"content\": \"!\", \"lstrip\": false}, \"eos_token\": \"<|endoftext|>\"}");
            var tokenizer = ClipTokenizer.FromFolder(dir);
            Assert.Equal(0, tokenizer.PadTokenId);
            using var batch = tokenizer.EncodeBatch(["a cat"], maxLength: 8);
            Assert.Equal(new long[] { 49406, 320, 2368, 49407, 0, 0, 0, 0 }, batch.data<long>().ToArray());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void WordLevelFilesRoundTrip()
    {
        var dir = TestPaths.NewTempDir("clip-tok-words");
        try
        {
            string[] words = ["cat", "dog", "hedgehog", "riding", "a", "bike", "hog", "dogs", "ride", "photo", "zebra", "ab", "xab", "aba"];
            ClipTokenizer.WriteWordLevelFiles(words, dir);
            var tokenizer = ClipTokenizer.FromFolder(dir);
            Assert.True(tokenizer.VocabSize < 512 + 2 + words.Sum(w => w.Length), $"vocab size {tokenizer.VocabSize}");
            Assert.Equal(tokenizer.EosTokenId, tokenizer.PadTokenId);
            var vocab = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "vocab.json")))!.AsObject();
            var seen = new HashSet<int>();
            foreach (var word in words)
            {
                var ids = tokenizer.Encode(word);
                Assert.Equal(3, ids.Count);
                Assert.Equal(tokenizer.BosTokenId, ids[0]);
                Assert.Equal(tokenizer.EosTokenId, ids[2]);
                Assert.Equal(vocab[word + "</w>"]!.GetValue<int>(), ids[1]);
                Assert.True(seen.Add(ids[1]), $"word {word} shares an id");
            }

            // Prompts of listed words: one id per word; unknown text falls back to characters.
            using var batch = tokenizer.EncodeBatch(["a cat riding a bike", "Hedgehog, dogs!"], maxLength: 10);
            var rows = batch.data<long>().ToArray();
            Assert.Equal(7, rows[..10].TakeWhile(id => id != tokenizer.EosTokenId).Count() + 1);
            Assert.Equal(tokenizer.Encode("a cat riding a bike").Select(i => (long)i), rows[..7]);
            Assert.Equal(6, tokenizer.Encode("Hedgehog, dogs!").Count);
            var unknown = tokenizer.Encode("quokka 42");
            Assert.Equal(2 + "quokka".Length + 2, unknown.Count);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void MissingVocabNamesTheFile()
    {
        var dir = TestPaths.NewTempDir("clip-tok-missing");
        try
        {
            ClipTokenizer.WriteWordLevelFiles(["cat"], dir);
            File.Delete(Path.Combine(dir, "vocab.json"));
            var e = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(dir));
            Assert.Contains("vocab.json", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void CorruptMergesNamesFileAndLine()
    {
        var dir = TestPaths.NewTempDir("clip-tok-corrupt");
        try
        {
            ClipTokenizer.WriteWordLevelFiles(["cat", "dog"], dir);
            var merges = Path.Combine(dir, "merges.txt");
            var lines = File.ReadAllLines(merges);
            lines[2] = "this line has three";
            File.WriteAllLines(merges, lines);
            var e = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(dir));
            Assert.Contains("merges.txt", e.Message);
            Assert.Contains("line 3", e.Message);

            lines[2] = "q zz";
            File.WriteAllLines(merges, lines);
            e = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(dir));
            Assert.Contains("merges.txt", e.Message);
            Assert.Contains("qzz", e.Message);

            File.WriteAllText(Path.Combine(dir, "vocab.json"), "{\"a\": 0, ");
            e = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(dir));
            Assert.Contains("vocab.json", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
    /// <summary>
    /// transformers' CLIPTokenizer on the SD3 fixture's two tokenizers (refenv text_encoders, transformers 4.45.2): with
    /// pad "!" (tokenizer_2, CLIP-G's; SD 2.x and SDXL have it too) a "!" in the text is the added pad token, id 0, not
    /// the BPE token "!&lt;/w&gt;"; with pad &lt;|endoftext|&gt; it is ordinary text.
    /// </summary>
    [Fact]
    public void APadTokenOfItsOwnIsSplitOutOfTheTextAsTransformersDoes()
    {
        var folder = TestPaths.Fixture("refenv", "text_encoders");
        var prompts = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "io.json")))!["prompts"]!.AsArray().Select(p => p!.GetValue<string>()).ToList();
        Assert.Contains(prompts, p => p.Contains('!'));
        var io = SafetensorsFile.Load(Path.Combine(folder, "io.safetensors"));
        try
        {
            foreach (var (dir, key) in new[] { ("tokenizer", "clip_l.input_ids"), ("tokenizer_2", "clip_g.input_ids") })
            {
                var tokenizer = ClipTokenizer.FromFolder(Path.Combine(folder, dir));
                using var ids = tokenizer.EncodeBatch(prompts);
                Assert.Equal(io[key].data<long>().ToArray(), ids.data<long>().ToArray());
            }
        }
        finally
        {
            foreach (var t in io.Values) t.Dispose();
        }
    }
}
