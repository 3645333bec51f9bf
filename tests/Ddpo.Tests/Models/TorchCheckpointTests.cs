using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>
/// <see cref="TorchCheckpoint"/> against files written by PyTorch 1.13's torch.save (Fixtures/torch_pickle/make.py):
/// every tensor equals the expected safetensors bit for bit; malicious pickles are refused naming the global and
/// run nothing; truncated or malformed archives are errors naming the file.
/// </summary>
public sealed class TorchCheckpointTests
{
    internal static string Fixture(string name) => TestPaths.Fixture("torch_pickle", name);

    private static JsonObject Expected => (JsonObject)JsonNode.Parse(File.ReadAllText(Fixture("expected.json")))!;

    /// <summary>Same names, dtypes, shapes and bytes; the loaded tensors are contiguous (strides resolved to values).</summary>
    internal static void AssertSameTensors(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, e) in expected)
        {
            var a = actual[name];
            Assert.True(e.dtype == a.dtype, $"{name}: dtype {a.dtype}, expected {e.dtype}");
            Assert.True(e.shape.SequenceEqual(a.shape), $"{name}: shape [{string.Join(", ", a.shape)}], expected [{string.Join(", ", e.shape)}]");
            Assert.True(a.is_contiguous(), name);
            Assert.True(e.bytes.SequenceEqual(a.bytes), $"{name}: the values differ");
        }
    }

    [Theory]
    [InlineData("plain")]
    [InlineData("plain_protocol4")]
    [InlineData("module")]
    [InlineData("bigendian")]
    public void EveryTensorEqualsTheExpectedValuesBitForBit(string name)
    {
        using var scope = NewDisposeScope();
        var actual = TorchCheckpoint.Load(Fixture(name + ".pt"), out var skipped);
        var expected = SafetensorsFile.Load(Fixture(name + ".expected.safetensors"));
        AssertSameTensors(expected, actual);
        Assert.Empty(skipped);
    }

    [Fact]
    public void ThePlainStateDictCoversEveryDtypeAndLayout()
    {
        // The fixture really has what the bit-exact test is meant to cover; the names come in the file's order.
        using var scope = NewDisposeScope();
        var t = TorchCheckpoint.Load(Fixture("plain.pt"));
        Assert.Equal(["f32", "f16", "bf16", "f64", "i64", "i32", "u8", "i8", "mask", "transposed", "base", "view", "strided", "expanded", "scalar", "empty"], t.Keys);
        Assert.Equal(ScalarType.BFloat16, t["bf16"].dtype);
        Assert.Equal(ScalarType.Float16, t["f16"].dtype);
        Assert.Equal(ScalarType.Bool, t["mask"].dtype);
        Assert.Equal(ScalarType.Int64, t["i64"].dtype);
        Assert.Equal(1L << 62, t["i64"][4].item<long>());
        Assert.Empty(t["scalar"].shape);
        Assert.Equal(2.5f, t["scalar"].item<float>());
        Assert.Equal([0L, 3L], t["empty"].shape);
        // view = base[5:11].view(2, 3), strided = base[1::4]: the values at the storage offsets, as separate copies.
        Assert.True(t["view"].flatten().eq(t["base"][5..11]).all().item<bool>());
        Assert.True(t["strided"].eq(t["base"][TensorIndex.Slice(1, null, 4)]).all().item<bool>());
        // expanded = i32[0].expand(3, 2): stride 0, six values from a row of two.
        Assert.Equal(new[] { 1, -2, 1, -2, 1, -2 }, t["expanded"].data<int>().ToArray());
        float before = t["base"][5].item<float>();
        t["view"].fill_(0);
        Assert.Equal(before, t["base"][5].item<float>());
    }

    /// <summary>
    /// nested: {"state_dict": ..., "epoch": 3, "name": ...}. torch2_style: torch 2.x's layout (folder "archive",
    /// .format_version, .data/serialization_id), a Parameter, and bytes (_codecs.encode), a float, a 71-bit int, a
    /// list, None and a bool beside the tensors.
    /// </summary>
    [Theory]
    [InlineData("nested")]
    [InlineData("torch2_style")]
    public void TheStateDictIsFoundAndOtherValuesAreReported(string name)
    {
        using var scope = NewDisposeScope();
        var actual = TorchCheckpoint.Load(Fixture(name + ".pt"), out var skipped);
        AssertSameTensors(SafetensorsFile.Load(Fixture(name + ".expected.safetensors")), actual);
        Assert.Equal(Expected[name + "_skipped"]!.AsArray().Select(n => (string)n!), skipped);
    }

    [Theory]
    [InlineData("ambiguous", "several dicts of tensors ('state_dict', 'model')", "'model' (a dict of 2), 'state_dict' (a dict of 2)")]
    [InlineData("no_tensors", "no tensors at the top level", "'epoch' (an int), 'optimizer' (a dict of 1)")]
    public void NoSingleStateDictIsAnErrorListingTheTopLevelKeys(string name, string why, string keys)
    {
        var path = Fixture(name + ".pt");
        var e = Assert.Throws<ModelLoadException>(() => TorchCheckpoint.Load(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(why, e.Message);
        Assert.EndsWith("top-level keys: " + keys, e.Message);
    }

    [Theory]
    [InlineData("evil_os_system")]
    [InlineData("evil_eval")]
    [InlineData("evil_class")]
    [InlineData("evil_protocol4")]
    [InlineData("whole_module")]
    public void MaliciousPicklesAreRefusedNamingTheGlobalAndRunNothing(string name)
    {
        var marker = (string)Expected["marker"]!;
        var global = (string)Expected["refused"]![name]!;
        if (File.Exists(marker)) File.Delete(marker);
        var path = Fixture(name + ".pt");
        var e = Assert.Throws<ModelLoadException>(() => TorchCheckpoint.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains($"refuses to load '{global}'", e.Message);
        Assert.Contains("weights_only=True", e.Message);
        Assert.False(File.Exists(marker), $"{marker} was created: the pickle ran");
        Assert.Equal(name == "whole_module", e.Message.EndsWith("re-save model.state_dict() with torch.save)", StringComparison.Ordinal));
    }

    [Fact]
    public void TheLegacyFormatIsNamed()
    {
        var path = Fixture("legacy.pt");
        var e = Assert.Throws<ModelLoadException>(() => TorchCheckpoint.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("legacy format: re-save with torch >= 1.6", e.Message);
    }

    [Theory]
    [InlineData("view_out_of_bounds", "tensor 'w' (size [3], stride [1], offset 2) does not fit its storage '0' of 4 Float32 elements")]
    [InlineData("huge_expansion", "tensor 'w' (size [1000000000000], stride [0], offset 0) repeats its storage '0' of 4 elements to 1000000000000; expanded views over 16777216 elements are not loaded")]
    [InlineData("short_storage", "storage '0' is 8 Float32 elements, but its entry 'short_storage/data/0' has 16 bytes")]
    public void StorageRecordsThatDoNotFitAreErrors(string name, string message)
    {
        var path = Fixture(name + ".pt");
        var e = Assert.Throws<ModelLoadException>(() => TorchCheckpoint.Load(path));
        Assert.Equal($"{path}: {message}", e.Message);
    }

    /// <summary>Writes a copy of a fixture whose entries pass through <paramref name="edit"/> (null drops the entry).</summary>
    private static string Rewrite(string dir, string fixture, Func<string, byte[], byte[]?> edit, CompressionLevel level = CompressionLevel.NoCompression)
    {
        var path = Path.Combine(dir, $"edited-{level}.pt");
        using var source = ZipFile.OpenRead(Fixture(fixture));
        using var target = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var entry in source.Entries)
        {
            using var input = entry.Open();
            using var buffer = new MemoryStream();
            input.CopyTo(buffer);
            if (edit(entry.FullName, buffer.ToArray()) is not { } bytes) continue;
            using var output = target.CreateEntry(entry.FullName, level).Open();
            output.Write(bytes);
        }
        return path;
    }

    public static TheoryData<string, string> Corruptions => new()
    {
        { "no data.pkl", "missing data.pkl" },
        { "no storage", "storage '0' points to the missing entry 'plain/data/0'" },
        { "truncated data.pkl", "plain/data.pkl is not a valid checkpoint pickle at byte" },
        { "unknown opcode", "unsupported pickle opcode 0xff" },
        { "byteorder", "bigendian/byteorder is 'middle', expected 'little' or 'big'" },
        { "not a dict", "the checkpoint holds a list of 0, expected a dict of tensors" },
        { "memo", "memo entry 7 is read before it is written" },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void MalformedArchivesAreErrorsNamingTheFile(string corruption, string message)
    {
        var dir = TestPaths.NewTempDir("ddpo-pickle");
        try
        {
            // torch 1.13 writes no byteorder entry (little-endian then); the hand-written big-endian archive has one.
            var path = Rewrite(dir, corruption == "byteorder" ? "bigendian.pt" : "plain.pt", (name, bytes) => (corruption, name) switch
            {
                ("no data.pkl", "plain/data.pkl") => null,
                ("no storage", "plain/data/0") => null,
                ("truncated data.pkl", "plain/data.pkl") => bytes[..(bytes.Length / 2)],
                ("unknown opcode", "plain/data.pkl") => [0x80, 0x02, 0xff],
                ("byteorder", "bigendian/byteorder") => Encoding.ASCII.GetBytes("middle"),
                ("not a dict", "plain/data.pkl") => [0x80, 0x02, (byte)']', (byte)'.'],
                ("memo", "plain/data.pkl") => [0x80, 0x02, (byte)'h', 7, (byte)'.'],
                _ => bytes,
            });
            var e = Assert.Throws<ModelLoadException>(() => TorchCheckpoint.Load(path));
            Assert.StartsWith(path + ": ", e.Message);
            Assert.Contains(message, e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// Seeded random damage to data.pkl (byte flips, and truncation at every 5th length): each load either succeeds
    /// or is a <see cref="ModelLoadException"/> naming the file, never another exception type.
    /// </summary>
    [Fact]
    public void DamagedPicklesAreModelLoadExceptionsOrLoad()
    {
        var dir = TestPaths.NewTempDir("ddpo-pickle");
        try
        {
            var original = ReadEntry("plain.pt", "plain/data.pkl");
            var cases = new List<byte[]>();
            for (int length = 0; length < original.Length; length += 5) cases.Add(original[..length]);
            var random = new Random(1234);
            for (int i = 0; i < 300; i++)
            {
                var damaged = (byte[])original.Clone();
                for (int flips = random.Next(1, 4); flips > 0; flips--) damaged[random.Next(damaged.Length)] = (byte)random.Next(256);
                cases.Add(damaged);
            }
            int refused = 0;
            for (int i = 0; i < cases.Count; i++)
            {
                var path = Path.Combine(dir, $"case{i}.pt");
                var pickle = cases[i];
                File.Move(Rewrite(dir, "plain.pt", (name, bytes) => name == "plain/data.pkl" ? pickle : bytes), path);
                try
                {
                    using var scope = NewDisposeScope();
                    TorchCheckpoint.Load(path);
                }
                catch (ModelLoadException e)
                {
                    Assert.StartsWith(path + ": ", e.Message);
                    refused++;
                }
                catch (Exception e)
                {
                    Assert.Fail($"case {i}: {e.GetType().Name}: {e.Message}");
                }
            }
            Assert.True(refused > cases.Count / 2, $"only {refused} of {cases.Count} damaged pickles were refused");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static byte[] ReadEntry(string fixture, string entry)
    {
        using var zip = ZipFile.OpenRead(Fixture(fixture));
        using var stream = zip.GetEntry(entry)!.Open();
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    [Fact]
    public void CompressedEntriesAreRefused()
    {
        var dir = TestPaths.NewTempDir("ddpo-pickle");
        try
        {
            var path = Rewrite(dir, "plain.pt", (_, bytes) => bytes, CompressionLevel.Optimal);
            var e = Assert.Throws<ModelLoadException>(() => TorchCheckpoint.Load(path));
            Assert.StartsWith($"{path}: entry 'plain/data.pkl' is compressed (", e.Message);
            Assert.EndsWith("torch.save writes entries uncompressed (STORED)", e.Message);
            // The same entries stored as torch writes them load.
            using var scope = NewDisposeScope();
            AssertSameTensors(SafetensorsFile.Load(Fixture("plain.expected.safetensors")), TorchCheckpoint.Load(Rewrite(dir, "plain.pt", (_, bytes) => bytes)));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(100)]
    [InlineData(2000)]
    [InlineData(-10)]
    [InlineData(-1)]
    public void TruncatedFilesAreErrorsNamingTheFile(int keep)
    {
        var dir = TestPaths.NewTempDir("ddpo-pickle");
        try
        {
            var bytes = File.ReadAllBytes(Fixture("plain.pt"));
            var path = Path.Combine(dir, "truncated.pt");
            File.WriteAllBytes(path, bytes[..(keep >= 0 ? keep : bytes.Length + keep)]);
            var e = Assert.Throws<ModelLoadException>(() => TorchCheckpoint.Load(path));
            Assert.StartsWith(path + ": ", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void AFileThatIsNoCheckpointIsNamed()
    {
        var dir = TestPaths.NewTempDir("ddpo-pickle");
        try
        {
            var path = Path.Combine(dir, "notes.pt");
            File.WriteAllText(path, "hello");
            Assert.Equal($"{path}: not a torch.save checkpoint (expected a zip archive with data.pkl)",
                Assert.Throws<ModelLoadException>(() => TorchCheckpoint.Load(path)).Message);
            var missing = Path.Combine(dir, "missing.pt");
            Assert.Equal($"{missing}: checkpoint file not found", Assert.Throws<ModelLoadException>(() => TorchCheckpoint.Load(missing)).Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
