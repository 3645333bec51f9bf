using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>
/// A small valid safetensors file (four tensors of the tiny UNet fixture) under deterministic corruptions: each
/// gives a <see cref="ModelLoadException"/> naming the file, the tensor and what was expected, before any tensor
/// is made; never another exception type or a native libtorch error.
/// </summary>
public sealed class SafetensorsFuzzTests
{
    private static readonly string[] SampleKeys = ["conv_in.bias", "conv_in.weight", "conv_norm_out.bias", "conv_norm_out.weight"];

    /// <summary>The valid sample: <c>__metadata__</c> and four F32 tensors, contiguous from offset 0 (4992 data bytes).</summary>
    private static readonly Lazy<byte[]> Valid = new(() =>
    {
        var fixture = SafetensorsBytes.Read(Path.Combine(ModelFixtures.UnetFolder, "diffusion_pytorch_model.safetensors"));
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long end = 0;
        foreach (var key in SampleKeys)
        {
            var entry = fixture.Header[key]!.DeepClone().AsObject();
            header[key] = entry;
            end = Math.Max(end, entry["data_offsets"]![1]!.GetValue<long>());
        }
        return SafetensorsBytes.Assemble(Encoding.UTF8.GetBytes(header.ToJsonString()), fixture.Data[..(int)end]);
    });

    private static SafetensorsBytes Sample() => SafetensorsBytes.Parse(Valid.Value);

    private static int HeaderLength => (int)BinaryPrimitives.ReadUInt64LittleEndian(Valid.Value);

    private static byte[] Truncate(int length) => Valid.Value[..length];

    private static byte[] WithLengthField(ulong value)
    {
        var bytes = (byte[])Valid.Value.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        return bytes;
    }

    private static byte[] Edit(Action<JsonObject> edit)
    {
        var sample = Sample();
        edit(sample.Header);
        return sample.ToBytes();
    }

    private static byte[] EditEntry(string key, Action<JsonObject> edit) => Edit(h => edit(h[key]!.AsObject()));

    private static byte[] WithHeaderText(string text) => SafetensorsBytes.Assemble(Encoding.UTF8.GetBytes(text), Sample().Data);

    /// <summary>Each corruption and the fragments its message must hold (besides the file's path).</summary>
    private static readonly Dictionary<string, (Func<byte[]> Make, string[] Expected)> Cases = new()
    {
        ["truncated to 0 bytes"] = (() => Truncate(0), ["0 bytes, too short", "expected at least 8 bytes"]),
        ["truncated inside the length field"] = (() => Truncate(5), ["5 bytes, too short"]),
        ["truncated after the length field"] = (() => Truncate(8), ["header length field says", "bytes follow it (truncated file?)"]),
        ["truncated inside the header"] = (() => Truncate(8 + HeaderLength / 2), ["header length field says", "bytes follow it (truncated file?)"]),
        ["truncated after the header"] = (() => Truncate(8 + HeaderLength), ["'conv_in.bias'", "end past the data section's 0 bytes", "truncated safetensors file"]),
        ["truncated inside the data"] = (() => Truncate(8 + HeaderLength + 1000), ["'conv_in.weight'", "end past the data section's 1000 bytes"]),
        ["truncated by one byte"] = (() => Truncate(Valid.Value.Length - 1), ["'conv_norm_out.weight'", "expected end <= 4991"]),
        ["header length zero"] = (() => WithLengthField(0), ["header length field says 0 bytes, expected at least 2"]),
        ["header length huge (2^63)"] = (() => WithLengthField(1UL << 63), ["header length field says 9223372036854775808 bytes, expected at most 100000000"]),
        ["header length all ones"] = (() => WithLengthField(ulong.MaxValue), ["header length field says 18446744073709551615 bytes"]),
        ["header length over the 100 MB limit"] = (() => WithLengthField(100_000_001), ["header length field says 100000001 bytes"]),
        ["header length one short (odd)"] = (() => WithLengthField((ulong)HeaderLength - 1), ["header is not valid JSON"]),
        ["header length one long, into the data"] = (() => WithLengthField((ulong)HeaderLength + 1), ["header is not valid"]),
        ["invalid UTF-8 in a key (0xFF)"] = (() => Sample().WithKeyByte("conv_in.weight", 0xFF), ["not valid UTF-8", "byte 0xFF at offset", "in the string \"\\xFFonv_in.weight\""]),
        ["lone UTF-8 lead byte in a key (0xC3)"] = (() => Sample().WithKeyByte("conv_norm_out.bias", 0xC3), ["not valid UTF-8", "byte 0xC3"]),
        ["header not JSON"] = (() => WithHeaderText("this is not json at all"), ["header is not valid JSON"]),
        ["header JSON cut short"] = (() => WithHeaderText("{\"conv_in.bias\": {\"dtype\": \"F32\""), ["header is not valid JSON"]),
        ["header a JSON array"] = (() => WithHeaderText("[1, 2, 3]"), ["header is a JSON array, expected an object"]),
        ["entry not an object"] = (() => Edit(h => h["conv_in.bias"] = "F32"), ["'conv_in.bias'", "entry is a JSON string, expected an object"]),
        ["unknown dtype"] = (() => EditEntry("conv_in.weight", e => e["dtype"] = "F17"), ["'conv_in.weight'", "dtype 'F17' is not supported", "expected one of F64, F32"]),
        ["dtype a number"] = (() => EditEntry("conv_in.weight", e => e["dtype"] = 32), ["'conv_in.weight'", "'dtype' is 32", "expected a string"]),
        ["dtype missing"] = (() => EditEntry("conv_in.bias", e => e.Remove("dtype")), ["'conv_in.bias'", "'dtype' is missing"]),
        ["negative shape [-3, 4]"] = (() => EditEntry("conv_in.weight", e => e["shape"] = new JsonArray(-3, 4)), ["'conv_in.weight'", "shape [-3,4] has -3 at index 0", "expected a non-negative integer"]),
        ["overflowing shape [2^40, 2^40]"] = (() => EditEntry("conv_in.weight", e => e["shape"] = new JsonArray(1L << 40, 1L << 40)), ["'conv_in.weight'", "more than 2^62 elements"]),
        ["overflowing shape beside a zero [0, 2^40, 2^40]"] = (() => EditEntry("conv_in.bias", e => e["shape"] = new JsonArray(0, 1L << 40, 1L << 40)), ["'conv_in.bias'", "more than 2^62 elements"]),
        ["shape beyond 64 bits"] = (() => EditEntry("conv_in.bias", e => e["shape"] = JsonNode.Parse("[100000000000000000000000]")), ["'conv_in.bias'", "expected a non-negative integer"]),
        ["fractional shape"] = (() => EditEntry("conv_in.bias", e => e["shape"] = JsonNode.Parse("[31.5]")), ["'conv_in.bias'", "has 31.5 at index 0"]),
        ["shape a string"] = (() => EditEntry("conv_in.bias", e => e["shape"] = "32"), ["'conv_in.bias'", "'shape' is \"32\"", "expected an array"]),
        ["shape not matching the offsets"] = (() => EditEntry("conv_in.weight", e => e["shape"] = new JsonArray(32, 4, 3, 2)), ["'conv_in.weight'", "hold 4608 bytes, expected 3072"]),
        ["dtype not matching the offsets"] = (() => EditEntry("conv_in.bias", e => e["dtype"] = "F64"), ["'conv_in.bias'", "hold 128 bytes, expected 256"]),
        ["offsets outside the file"] = (() => EditEntry("conv_norm_out.bias", e => e["data_offsets"] = new JsonArray(1_000_000_000_000L, 1_000_000_000_128L)), ["'conv_norm_out.bias'", "end past the data section's 4992 bytes"]),
        ["offsets reversed"] = (() => EditEntry("conv_norm_out.bias", e => e["data_offsets"] = new JsonArray(4864, 4736)), ["'conv_norm_out.bias'", "begin after they end"]),
        ["offsets negative"] = (() => EditEntry("conv_in.bias", e => e["data_offsets"] = new JsonArray(-128, 0)), ["'conv_in.bias'", "not two non-negative integers"]),
        ["offsets overlapping"] = (() => EditEntry("conv_norm_out.bias", e => e["data_offsets"] = new JsonArray(64, 192)), ["'conv_in.bias'", "'conv_norm_out.bias'", "overlap"]),
        ["offsets missing"] = (() => EditEntry("conv_in.weight", e => e.Remove("data_offsets")), ["'conv_in.weight'", "'data_offsets' is missing", "expected [begin, end]"]),
        ["offsets of three numbers"] = (() => EditEntry("conv_in.weight", e => e["data_offsets"] = new JsonArray(128, 4736, 9000)), ["'conv_in.weight'", "expected [begin, end]"]),
        ["metadata not a string map"] = (() => Edit(h => h["__metadata__"] = new JsonObject { ["format"] = 3 }), ["'__metadata__' entry 'format' is a JSON number, expected a string"]),
        ["metadata an array"] = (() => Edit(h => h["__metadata__"] = new JsonArray("pt")), ["'__metadata__' is a JSON array"]),
        ["duplicate key"] = (() =>
        {
            var text = Sample().Header.ToJsonString();
            return WithHeaderText(text[..^1] + ",\"conv_in.bias\":{\"dtype\":\"F32\",\"shape\":[32],\"data_offsets\":[0,128]}}");
        }, ["'conv_in.bias' appears twice"]),
    };

    public static TheoryData<string> CaseNames() => new(Cases.Keys);

    [Fact]
    public void TheSampleIsValidAndLoadsTheFixtureTensors()
    {
        var path = Write(Valid.Value);
        try
        {
            var header = SafetensorsFile.Validate(path);
            Assert.Equal(SampleKeys, header.Entries.Select(e => e.Name));
            Assert.Equal("pt", header.Metadata["format"]);
            var loaded = SafetensorsFile.Load(path);
            var fixture = SafetensorsFile.Load(Path.Combine(ModelFixtures.UnetFolder, "diffusion_pytorch_model.safetensors"));
            try
            {
                Assert.Equal(SampleKeys.Order(), loaded.Keys.Order());
                foreach (var key in SampleKeys)
                {
                    Assert.Equal(ScalarType.Float32, loaded[key].dtype);
                    Assert.Equal(fixture[key].shape, loaded[key].shape);
                    Assert.Equal(fixture[key].bytes.ToArray(), loaded[key].bytes.ToArray());
                }
            }
            finally
            {
                StateDictLoader.DisposeAll(loaded);
                StateDictLoader.DisposeAll(fixture);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ThereAreAtLeast25Corruptions() => Assert.True(Cases.Count >= 25, $"{Cases.Count} corruption cases");

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void CorruptionGivesANamedError(string name)
    {
        var (make, expected) = Cases[name];
        var path = Write(make());
        try
        {
            var e = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Load(path));
            Assert.Contains(path, e.Message);
            foreach (var fragment in expected)
            {
                Assert.Contains(fragment, e.Message);
            }
            Assert.Throws<ModelLoadException>(() => SafetensorsFile.Validate(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// Random byte flips in the header (fixed seeds): each file either still loads (the flip made another valid
    /// header, e.g. a different key) or gives the named error; nothing else. Most flips must be caught.
    /// </summary>
    [Fact]
    public void RandomHeaderByteFlipsGiveANamedErrorOrAValidFile()
    {
        int caught = 0, loaded = 0;
        for (int seed = 0; seed < 40; seed++)
        {
            var random = new Random(seed);
            var bytes = (byte[])Valid.Value.Clone();
            int flips = 1 + seed % 3;
            for (int f = 0; f < flips; f++)
            {
                bytes[8 + random.Next(HeaderLength)] ^= (byte)(1 << random.Next(8));
            }
            var path = Write(bytes);
            try
            {
                var tensors = SafetensorsFile.Load(path);
                StateDictLoader.DisposeAll(tensors);
                loaded++;
            }
            catch (ModelLoadException e)
            {
                Assert.Contains(path, e.Message);
                caught++;
            }
            finally
            {
                File.Delete(path);
            }
        }
        Assert.Equal(40, caught + loaded);
        Assert.True(caught >= 35, $"only {caught} of 40 flipped headers were rejected");
    }

    /// <summary>The three crashes, through the model loader: a clean error naming the file and tensor.</summary>
    [Theory]
    [InlineData("invalid UTF-8 key", "not valid UTF-8 (byte 0xFF at offset")]
    [InlineData("negative shape", "has -3 at index 0")]
    [InlineData("overflowing shape", "more than 2^62 elements")]
    public void UNetFolderWithACorruptHeaderGivesANamedError(string corruption, string expected)
    {
        const string key = "conv_in.weight";
        var dir = ModelFixtures.UnetCopy();
        try
        {
            var file = Path.Combine(dir, "diffusion_pytorch_model.safetensors");
            var weights = SafetensorsBytes.Read(file);
            File.WriteAllBytes(file, corruption switch
            {
                "invalid UTF-8 key" => weights.WithKeyByte(key, 0xFF),
                "negative shape" => EditAndAssemble(weights, e => e["shape"] = new JsonArray(-3, 4)),
                _ => EditAndAssemble(weights, e => e["shape"] = new JsonArray(1L << 40, 1L << 40)),
            });
            var e = Assert.Throws<ModelLoadException>(() => UNet2DConditionModel.FromPretrained(dir));
            Assert.Contains(file, e.Message);
            Assert.Contains(expected, e.Message);
            // A key with an invalid byte cannot be decoded; it is shown with the byte escaped.
            Assert.Contains(corruption == "invalid UTF-8 key" ? "in the string \"\\xFFonv_in.weight\"" : $"'{key}'", e.Message);
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }

        static byte[] EditAndAssemble(SafetensorsBytes weights, Action<JsonObject> edit)
        {
            edit(weights.Header[key]!.AsObject());
            return weights.ToBytes();
        }
    }

    private static string Write(byte[] bytes)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ddpo-fuzz-{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
