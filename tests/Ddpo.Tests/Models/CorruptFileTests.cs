using System.Text;
using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using Ddpo.Runs;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Ddpo.Text;
using Ddpo.Tokenizers;
using Ddpo.Training;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>
/// Every kind of file the project reads, written valid and then corrupted (truncated, invalid UTF-8, wrong types,
/// garbage, ...): the reader throws its named error type with a message naming the file and what was expected;
/// never another exception type, never a silently different value.
/// </summary>
public sealed class CorruptFileTests
{
    /// <summary>
    /// A file kind: <c>Create</c> writes a valid file set in a fresh folder and returns the file to corrupt;
    /// <c>Read</c> reads it from that folder the way the project does; <c>Error</c> is the exception type expected.
    /// </summary>
    private sealed record FileKind(Func<string, string> Create, Action<string> Read, Type Error);

    private static readonly string[] BertWords = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "##s"];

    private static readonly Dictionary<string, FileKind> Kinds = new()
    {
        ["unet config.json"] = new(dir => Copy(Path.Combine(ModelFixtures.UnetFolder, "config.json"), dir),
            dir => UNet2DConditionConfig.Load(Path.Combine(dir, "config.json")), typeof(ConfigException)),
        ["scheduler_config.json"] = new(dir => Copy(Path.Combine(TinyModels.Pixel, "scheduler", "scheduler_config.json"), dir),
            dir => DdimSchedulerConfig.Load(Path.Combine(dir, "scheduler_config.json")), typeof(ConfigException)),
        ["training config.toml"] = new(dir => Write(Path.Combine(dir, "config.toml"), "run_name = \"cats\"\nseed = 3\n\n[sample]\nnum_steps = 10\n"),
            dir => DdpoConfig.Load(Path.Combine(dir, "config.toml"), null, null), typeof(ConfigException)),
        ["training config.json"] = new(dir => Write(Path.Combine(dir, "config.json"), "{\"run_name\": \"cats\", \"sample\": {\"num_steps\": 10}}"),
            dir => DdpoConfig.Load(Path.Combine(dir, "config.json"), null, null), typeof(ConfigException)),
        ["tokenizer vocab.json"] = new(dir => CopyTokenizer(dir, "vocab.json"), dir => ClipTokenizer.FromFolder(dir), typeof(ModelLoadException)),
        ["tokenizer merges.txt"] = new(dir => CopyTokenizer(dir, "merges.txt"), dir => ClipTokenizer.FromFolder(dir), typeof(ModelLoadException)),
        ["tokenizer special_tokens_map.json"] = new(dir => CopyTokenizer(dir, "special_tokens_map.json"), dir => ClipTokenizer.FromFolder(dir), typeof(ModelLoadException)),
        ["BERT vocab.txt"] = new(dir => Write(Path.Combine(dir, "vocab.txt"), string.Join("\n", BertWords) + "\n"),
            dir => BertWordPieceTokenizer.FromFolder(dir, 32), typeof(ModelLoadException)),
        ["pipeline model_index.json"] = new(dir =>
        {
            Write(Path.Combine(dir, "model_index.json"), File.ReadAllText(Path.Combine(TinyModels.Pixel, "model_index.json")));
            foreach (var part in new[] { "unet", "text_encoder", "tokenizer", "scheduler" }) Directory.CreateDirectory(Path.Combine(dir, part));
            return Path.Combine(dir, "model_index.json");
        }, dir => PipelineLayout.Read(dir), typeof(ModelLoadException)),
        ["checkpoint state.json"] = new(dir => Path.Combine(SaveCheckpoint(dir), RunFolder.CheckpointStateFileName),
            dir => LoadCheckpoint(dir), typeof(ModelLoadException)),
        ["checkpoint tensors.safetensors"] = new(dir => Path.Combine(SaveCheckpoint(dir), RunFolder.CheckpointTensorsFileName),
            dir => LoadCheckpoint(dir), typeof(ModelLoadException)),
        ["metrics.jsonl"] = new(dir =>
        {
            using (var writer = new TestMetricsWriter(dir))
            {
                writer.Write(new Dictionary<string, object?> { ["epoch"] = 0, ["reward_mean"] = 1.5, ["prompt"] = "a cat" });
                writer.Write(new Dictionary<string, object?> { ["epoch"] = 1, ["reward_mean"] = 2.5, ["prompt"] = "a dog" });
            }
            return Path.Combine(dir, RunFolder.MetricsFileName);
        }, dir =>
        {
            // Both the reader (report, eval) and the resume path, which rewrites the file.
            var path = Path.Combine(dir, RunFolder.MetricsFileName);
            Assert.Equal(2, MetricsLog.ReadAll(path).Count);
            MetricsLog.TruncateAfter(path, 5);
        }, typeof(FormatException)),
        ["eval prompts.json"] = new(dir =>
        {
            File.WriteAllText(Path.Combine(dir, RunFolder.MetricsFileName), "{\"epoch\": 0, \"reward_mean\": 1.0}\n");
            Directory.CreateDirectory(Path.Combine(dir, "images"));
            return Write(Path.Combine(dir, "images", "prompts.json"), "[\"a cat\", \"a dog\"]");
        }, dir => Assert.Equal(["a cat", "a dog"], Ddpo.Reporting.RunData.Load(Path.GetDirectoryName(dir)!).EvalPrompts), typeof(FormatException)),
        ["prompt list file"] = new(dir => Write(Path.Combine(dir, "prompts.txt"), "a cat\r\na dog\n"),
            dir => Assert.Equal(["a cat", "a dog"], Ddpo.Prompts.PromptLists.Load(Path.Combine(dir, "prompts.txt"))), typeof(ConfigException)),
        ["pending prompts.json"] = new(dir => Path.Combine(SavePending(dir), "prompts.json"), dir => LoadPending(dir), typeof(ModelLoadException)),
        ["pending samples.safetensors"] = new(dir => Path.Combine(SavePending(dir), "samples.safetensors"), dir => LoadPending(dir), typeof(ModelLoadException)),
    };

    /// <summary>(kind, corruption, the bytes of the corrupt file from the valid ones, a fragment the message must hold).</summary>
    private static readonly (string Kind, string Name, Func<byte[], byte[]> Corrupt, string Expected)[] Cases =
    [
        ("unet config.json", "truncated", Half, "not valid JSON"),
        ("unet config.json", "invalid UTF-8", b => InvalidUtf8After(b, "\"act_fn"), "not valid UTF-8 text (byte 0xFF at offset"),
        ("unet config.json", "wrong type", b => Replace(b, "\"in_channels\": 4", "\"in_channels\": \"four\""), "field 'in_channels' expected an integer, got \"four\""),
        ("unet config.json", "top level an array", _ => Utf8("[1, 2]"), "expected a JSON object"),
        ("unet config.json", "empty", _ => [], "not valid JSON"),
        ("unet config.json", "repeated key", b => Replace(b, "\"in_channels\": 4,", "\"in_channels\": 4, \"in_channels\": 8,"), "not valid JSON"),
        ("unet config.json", "binary garbage", _ => Garbage(200), "not valid"),
        ("scheduler_config.json", "truncated", Half, "not valid JSON"),
        ("scheduler_config.json", "invalid UTF-8", b => InvalidUtf8After(b, "\"beta_schedule\": \"scaled"), "not valid UTF-8 text"),
        ("scheduler_config.json", "wrong type", b => Replace(b, "\"num_train_timesteps\": 1000", "\"num_train_timesteps\": \"many\""), "field 'num_train_timesteps' expected an integer"),
        ("scheduler_config.json", "zero timesteps", b => Replace(b, "\"num_train_timesteps\": 1000", "\"num_train_timesteps\": 0"), "field 'num_train_timesteps' = 0, expected an integer from 1"),
        ("scheduler_config.json", "betas reversed", b => Replace(b, "\"beta_end\": 0.012", "\"beta_end\": 0.0001"), "field 'beta_end' = 0.0001"),
        ("scheduler_config.json", "binary garbage", _ => Garbage(100), "not valid"),
        ("training config.toml", "truncated", b => b[..24], "invalid TOML"),
        ("training config.toml", "invalid UTF-8", b => InvalidUtf8After(b, "\"ca"), "not valid UTF-8 text (byte 0xFF at offset 14, line 1)"),
        ("training config.toml", "wrong type", b => Replace(b, "num_steps = 10", "num_steps = \"ten\""), "sample.num_steps"),
        ("training config.toml", "out of range", b => Replace(b, "num_steps = 10", "num_steps = 0"), "sample.num_steps"),
        ("training config.toml", "unknown key", b => Replace(b, "num_steps = 10", "num_stepz = 10"), "num_stepz"),
        ("training config.toml", "binary garbage", _ => Garbage(100), "not valid"),
        ("training config.json", "truncated", Half, "invalid JSON"),
        ("training config.json", "invalid UTF-8", b => InvalidUtf8After(b, "\"run_"), "not valid UTF-8 text"),
        ("training config.json", "wrong type", b => Replace(b, "\"num_steps\": 10", "\"num_steps\": [10]"), "sample.num_steps"),
        ("training config.json", "top level an array", _ => Utf8("[]"), "expected a JSON object"),
        ("training config.json", "repeated key", b => Replace(b, "\"run_name\": \"cats\",", "\"run_name\": \"cats\", \"run_name\": \"dogs\","), "invalid JSON"),
        ("tokenizer vocab.json", "truncated", Half, "corrupt vocabulary: not valid JSON"),
        ("tokenizer vocab.json", "invalid UTF-8", b => InvalidUtf8After(b, "{\""), "not valid UTF-8 text (byte 0xFF at offset 2, line 1)"),
        ("tokenizer vocab.json", "id not an integer", b => Replace(b, "\"!\":0", "\"!\":\"zero\""), "token \"!\" has id \"zero\", expected an integer"),
        ("tokenizer vocab.json", "duplicate ids", b => Replace(b, "\"#\":2", "\"#\":1"), "share id 1"),
        ("tokenizer vocab.json", "repeated token", b => Replace(b, "\"#\":2", "\"!\":2"), "not valid JSON"),
        ("tokenizer vocab.json", "top level an array", _ => Utf8("[\"a\"]"), "expected a JSON object"),
        ("tokenizer merges.txt", "invalid UTF-8", b => InvalidUtf8After(b, "#version: 0.2\n"), "not valid UTF-8 text (byte 0xFF at offset 14, line 2)"),
        ("tokenizer merges.txt", "three symbols on a line", b => Replace(b, "t h\n", "t h e\n"), "line 3 is \"t h e\", expected two symbols"),
        ("tokenizer merges.txt", "merge not in the vocabulary", b => Replace(b, "t h\n", "t q\n"), "merges to \"tq\", which is not a token"),
        ("tokenizer merges.txt", "binary garbage", _ => Garbage(300), "merges.txt"),
        ("tokenizer special_tokens_map.json", "invalid UTF-8", b => InvalidUtf8After(b, "\"pad_token\": \"<|"), "not valid UTF-8 text"),
        ("tokenizer special_tokens_map.json", "pad token a number", b => Replace(b, "\"pad_token\": \"<|endoftext|>\"", "\"pad_token\": 7"), "field 'pad_token' = 7 is not a token"),
        ("tokenizer special_tokens_map.json", "truncated", Half, "not valid JSON"),
        ("BERT vocab.txt", "invalid UTF-8", b => InvalidUtf8After(b, "[MASK]\nthe"), "not valid UTF-8 text (byte 0xFF at offset 34, line 6)"),
        ("BERT vocab.txt", "empty", _ => [], "not a usable WordPiece vocabulary"),
        ("BERT vocab.txt", "no [SEP] token", b => Replace(b, "[SEP]\n", "sep\n"), "not a usable WordPiece vocabulary"),
        ("pipeline model_index.json", "invalid UTF-8", b => InvalidUtf8After(b, "\"_class_name\": \"Stable"), "not valid UTF-8 text"),
        ("pipeline model_index.json", "truncated", Half, "not valid JSON"),
        ("pipeline model_index.json", "binary garbage", _ => Garbage(64), "not valid"),
        ("checkpoint state.json", "truncated", Half, "malformed checkpoint state"),
        ("checkpoint state.json", "invalid UTF-8", b => InvalidUtf8After(b, "\"config_hash\": \"ab"), "not valid UTF-8 text"),
        ("checkpoint state.json", "epoch a string", b => Replace(b, "\"epoch\": 2", "\"epoch\": \"two\""), "malformed checkpoint state"),
        ("checkpoint state.json", "epoch negative", b => Replace(b, "\"epoch\": 2", "\"epoch\": -2"), "field 'epoch' is -2, expected a non-negative integer"),
        ("checkpoint state.json", "global_step a string", b => Replace(b, "\"global_step\": 8", "\"global_step\": \"eight\""), "malformed checkpoint state"),
        ("checkpoint state.json", "top level an array", _ => Utf8("[2]"), "malformed checkpoint state"),
        ("checkpoint state.json", "binary garbage", _ => Garbage(80), "not valid"),
        ("checkpoint state.json", "repeated key", b => Replace(b, "\"epoch\": 2,", "\"epoch\": 2, \"epoch\": 3,"), "malformed checkpoint state"),
        ("eval prompts.json", "invalid UTF-8", b => InvalidUtf8After(b, "\"a c"), "not valid UTF-8 text"),
        ("eval prompts.json", "prompt a number", b => Replace(b, "\"a dog\"", "5"), "element 1 is Number, expected a prompt string"),
        ("eval prompts.json", "an object, not a list", _ => Utf8("{\"prompts\": []}"), "expected a JSON array of prompt strings"),
        ("prompt list file", "invalid UTF-8", b => InvalidUtf8After(b, "a cat\r\na "), "not valid UTF-8 text (byte 0xFF at offset 9, line 2)"),
        ("prompt list file", "empty", _ => [], "holds no prompts"),
        ("prompt list file", "blank lines only", _ => Utf8("\n  \r\n\t\n"), "holds no prompts"),
        ("checkpoint tensors.safetensors", "truncated", b => b[..(b.Length - 3)], "truncated safetensors file"),
        ("checkpoint tensors.safetensors", "invalid UTF-8 key", b => SafetensorsBytes.Parse(b).WithKeyByte("w", 0xFF), "not valid UTF-8"),
        ("checkpoint tensors.safetensors", "negative shape", b => EditSafetensors(b, "w", e => e["shape"] = new System.Text.Json.Nodes.JsonArray(-3, 4)), "has -3 at index 0"),
        ("metrics.jsonl", "invalid UTF-8", b => InvalidUtf8After(b, "\"prompt\":\"a d"), "not valid UTF-8 text"),
        ("metrics.jsonl", "line cut short", b => b[..(b.Length - 5)], "metrics.jsonl:2: malformed metrics line"),
        ("metrics.jsonl", "line not an object", b => Replace(Replace(b, "{\"epoch\":1,", "[{\"epoch\":1,"), "\"a dog\"}", "\"a dog\"}]"), "metrics.jsonl:2: malformed"),
        ("metrics.jsonl", "repeated key", b => Replace(b, "{\"epoch\":1,", "{\"epoch\":1,\"epoch\":2,"), "metrics.jsonl:2: malformed"),
        ("metrics.jsonl", "binary garbage", _ => Garbage(100), "metrics.jsonl"),
        ("pending prompts.json", "invalid UTF-8", b => InvalidUtf8After(b, "\"a c"), "not valid UTF-8 text"),
        ("pending prompts.json", "truncated", Half, "malformed pending prompts"),
        ("pending prompts.json", "prompt a number", b => Replace(b, "\"a cat\"", "3"), "prompts[0] is a JSON Number, expected a string"),
        ("pending prompts.json", "metadata missing", b => Replace(b, "\"metadata\"", "\"metadatum\""), "'metadata' is missing"),
        ("pending prompts.json", "one prompt too many", b => Replace(b, "\"a cat\",", "\"a cat\",\"a cow\","), "not an array of 3 objects"),
        ("pending samples.safetensors", "truncated", b => b[..(b.Length / 2)], "truncated safetensors file"),
        ("pending samples.safetensors", "a sample too few", b => DropFirstSample(b, "latents"), "tensor 'latents' has shape [1, 3, 4, 2, 2], expected 2 samples"),
        ("pending samples.safetensors", "a step too few", b => DropLastStep(b, "log_probs"), "tensor 'log_probs' has shape [2, 2], expected [2, 3]"),
    ];

    public static TheoryData<string> KindNames() => new(Kinds.Keys);

    public static TheoryData<string, string> CaseNames()
    {
        var data = new TheoryData<string, string>();
        foreach (var c in Cases) data.Add(c.Kind, c.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(KindNames))]
    public void TheValidFileReads(string kind)
    {
        var dir = TestPaths.NewTempDir("ddpo-valid-file");
        try
        {
            var file = Kinds[kind].Create(dir);
            Assert.True(File.Exists(file), file);
            Kinds[kind].Read(Path.GetDirectoryName(file)!);
            Assert.True(Cases.Count(c => c.Kind == kind) >= 3, $"{kind}: fewer than 3 corruptions tested");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void TheCorruptFileGivesANamedError(string kind, string corruption)
    {
        var (_, _, corrupt, expected) = Cases.Single(c => c.Kind == kind && c.Name == corruption);
        var dir = TestPaths.NewTempDir("ddpo-corrupt-file");
        try
        {
            var file = Kinds[kind].Create(dir);
            File.WriteAllBytes(file, corrupt(File.ReadAllBytes(file)));
            var e = Assert.Throws(Kinds[kind].Error, () => Kinds[kind].Read(Path.GetDirectoryName(file)!));
            Assert.Contains(file, e.Message);
            Assert.Contains(expected, e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static string Copy(string from, string dir)
    {
        var to = Path.Combine(dir, Path.GetFileName(from));
        File.Copy(from, to);
        return to;
    }

    private static string CopyTokenizer(string dir, string corrupted)
    {
        foreach (var file in Directory.GetFiles(Path.Combine(TinyModels.Pixel, "tokenizer"))) Copy(file, dir);
        return Path.Combine(dir, corrupted);
    }

    private static string Write(string path, string text)
    {
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>A checkpoint of epoch 2 with a global step and one tensor "w"; returns its folder.</summary>
    private static string SaveCheckpoint(string dir)
    {
        using var w = arange(6, dtype: ScalarType.Float32).reshape(2, 3);
        var state = new TrainingState
        {
            Epoch = 2, GlobalStep = 8, ConfigHash = "abc",
        };
        return Checkpoint.Save(new RunFolder(dir), state, new Dictionary<string, Tensor> { ["w"] = w }, keepLimit: 2).Path;
    }

    private static void LoadCheckpoint(string checkpointDir)
    {
        var (state, tensors) = Checkpoint.At(checkpointDir).Load();
        Assert.Equal(2, state.Epoch);
        StateDictLoader.DisposeAll(tensors);
    }

    /// <summary>A pending epoch 3 of two samples, three steps, 4x2x2 latents; returns its folder.</summary>
    private static string SavePending(string dir)
    {
        using var scope = NewDisposeScope();
        var samples = new EpochSamples
        {
            Prompts = ["a cat", "a dog"],
            Metadata = [new Dictionary<string, string> { ["animal"] = "cat" }, new Dictionary<string, string>()],
            Condition = StableDiffusionPolicy.Condition(ones(2, 5, 8)),
            Times = tensor(new long[] { 900, 600, 300, 900, 600, 300 }).reshape(2, 3),
            Latents = zeros(new long[] { 2, 3, 4, 2, 2 }),
            NextLatents = ones(new long[] { 2, 3, 4, 2, 2 }),
            LogProbs = full(2, 3, -1.5f),
            Rewards = [float.NaN, float.NaN],
        };
        return PendingSamples.Save(new RunFolder(dir), 3, samples, zeros(2, 3, 8, 8));
    }

    private static void LoadPending(string pendingDir)
    {
        var runRoot = Path.GetDirectoryName(Path.GetDirectoryName(pendingDir))!;
        var loaded = PendingSamples.TryLoad(new RunFolder(runRoot), 3, CPU);
        Assert.NotNull(loaded);
        var (samples, images) = loaded.Value;
        Assert.Equal(["a cat", "a dog"], samples.Prompts);
        Assert.Equal("cat", samples.Metadata[0]["animal"]);
        samples.Dispose();
        images.Dispose();
    }

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Half(byte[] bytes) => bytes[..(bytes.Length / 2)];

    private static byte[] Garbage(int length)
    {
        var bytes = new byte[length];
        new Random(12345).NextBytes(bytes);
        return bytes;
    }

    private static byte[] Replace(byte[] bytes, string from, string to)
    {
        var text = Encoding.UTF8.GetString(bytes);
        Assert.True(text.Contains(from, StringComparison.Ordinal), $"'{from}' not in the valid file:\n{text}");
        return Utf8(text.Replace(from, to));
    }

    /// <summary>The bytes with 0xFF (never valid in UTF-8) inserted after the first occurrence of <paramref name="marker"/>.</summary>
    private static byte[] InvalidUtf8After(byte[] bytes, string marker)
    {
        int at = bytes.AsSpan().IndexOf(Utf8(marker));
        Assert.True(at >= 0, $"'{marker}' not in the valid file");
        at += Utf8(marker).Length;
        return [.. bytes[..at], 0xFF, .. bytes[at..]];
    }

    private static byte[] EditSafetensors(byte[] bytes, string key, Action<System.Text.Json.Nodes.JsonObject> edit)
    {
        var file = SafetensorsBytes.Parse(bytes);
        edit(file.Header[key]!.AsObject());
        return file.ToBytes();
    }

    /// <summary>A valid safetensors file whose tensor <paramref name="key"/> lost its first sample.</summary>
    private static byte[] DropFirstSample(byte[] bytes, string key) => Rewrite(bytes, key, t => t[1..]);

    /// <summary>A valid safetensors file whose tensor <paramref name="key"/> lost its last step.</summary>
    private static byte[] DropLastStep(byte[] bytes, string key) => Rewrite(bytes, key, t => t[.., ..^1]);

    private static byte[] Rewrite(byte[] bytes, string key, Func<Tensor, Tensor> change)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ddpo-rewrite-{Guid.NewGuid():N}.safetensors");
        try
        {
            File.WriteAllBytes(path, bytes);
            var tensors = SafetensorsFile.Load(path);
            var old = tensors[key];
            tensors[key] = change(old).contiguous();
            old.Dispose();
            SafetensorsFile.SaveAtomic(path, tensors);
            StateDictLoader.DisposeAll(tensors);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
