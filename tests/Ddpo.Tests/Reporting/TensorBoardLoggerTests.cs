using System.Buffers.Binary;
using System.Text;
using Ddpo.Reporting;
using Ddpo.Tests.Support;
using SkiaSharp;
using Tensorboard;
using Xunit;

namespace Ddpo.Tests.Reporting;

public sealed class TensorBoardLoggerTests : IDisposable
{
    private readonly string _run = TestPaths.NewTempDir("ddpo-tb");

    public void Dispose() => Directory.Delete(_run, recursive: true);

    private static Dictionary<string, object?> Metrics(int epoch, double reward) => new()
    {
        ["epoch"] = epoch,
        ["reward_mean"] = reward,
        ["approx_kl"] = float.NaN,
        ["samples"] = 16L,
        ["clipfrac"] = 0.25f,
        ["time"] = "2025-01-01T00:00:00Z",
        ["resumed"] = true,
        ["prompt_rewards"] = new Dictionary<string, object?> { ["a cat"] = new Dictionary<string, object?> { ["mean"] = reward + 1, ["n"] = 4 } },
    };

    [Fact]
    public void WritesScalarsAndTheGridAsValidTfRecordEvents()
    {
        var grid = Path.Combine(_run, "grid.png");
        RunFixture.WritePng(grid, 96, 32, new SKColor(200, 40, 90));
        var before = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        var logger = new TensorBoardLogger(_run);
        logger.LogEpoch(Metrics(0, 1.5), grid);
        logger.LogEpoch(Metrics(1, 2.25), null);

        Assert.Equal(Path.Combine(_run, "tensorboard"), logger.LogDirectory);
        var file = Assert.Single(Directory.GetFiles(logger.LogDirectory, "events.out.tfevents.*"));
        var bytes = File.ReadAllBytes(file);
        foreach (var tag in new[] { "reward_mean", "approx_kl", "samples", "clipfrac", "prompt_rewards/a cat/mean", TensorBoardLogger.GridTag })
        {
            Assert.True(Encoding.UTF8.GetString(bytes).Contains(tag, StringComparison.Ordinal), $"tag {tag} not in the event file");
        }

        var events = ReadRecords(bytes).Select(r => Event.Parser.ParseFrom(r)).ToList();
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        var scalars = events.Where(e => e.Summary is not null)
            .SelectMany(e => e.Summary.Value.Where(v => v.ValueCase == Summary.Types.Value.ValueOneofCase.SimpleValue).Select(v => (e.Step, v.Tag, v.SimpleValue)))
            .ToList();
        Assert.Contains((0L, "reward_mean", 1.5f), scalars);
        Assert.Contains((1L, "reward_mean", 2.25f), scalars);
        Assert.Contains((1L, "samples", 16f), scalars);
        Assert.Contains((0L, "clipfrac", 0.25f), scalars);
        Assert.Contains((0L, "prompt_rewards/a cat/mean", 2.5f), scalars);
        Assert.Contains((1L, "prompt_rewards/a cat/n", 4f), scalars);
        Assert.True(float.IsNaN(scalars.Single(s => s.Step == 0 && s.Tag == "approx_kl").SimpleValue));
        Assert.DoesNotContain(scalars, s => s.Tag is "epoch" or "time" or "resumed");
        Assert.Equal(2 * 6, scalars.Count);
        // Wall time in Unix seconds, as TensorBoard expects.
        Assert.All(events.Skip(1), e => Assert.InRange(e.WallTime, before - 1, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1));

        var image = Assert.Single(events, e => e.Summary?.Value.Any(v => v.Image is not null) == true);
        Assert.Equal(0, image.Step);
        var value = image.Summary.Value.Single();
        Assert.Equal(TensorBoardLogger.GridTag, value.Tag);
        Assert.Equal((96, 32), (value.Image.Width, value.Image.Height));
        using var decoded = SKBitmap.Decode(value.Image.EncodedImageString.ToByteArray());
        Assert.Equal((96, 32), (decoded.Width, decoded.Height));
        Assert.Equal(new SKColor(200, 40, 90), decoded.GetPixel(80, 20));

        // A resumed run gets a second event file beside the first.
        new TensorBoardLogger(_run).LogEpoch(Metrics(2, 3), null);
        Assert.Equal(2, Directory.GetFiles(logger.LogDirectory, "events.out.tfevents.*").Length);
    }

    [Fact]
    public void BadInputIsAClearError()
    {
        var logger = new TensorBoardLogger(_run);
        Assert.Contains("'epoch'", Assert.Throws<ArgumentException>(() => logger.LogEpoch(new Dictionary<string, object?> { ["reward_mean"] = 1.0 }, null)).Message);
        Assert.Throws<ArgumentException>(() => logger.LogEpoch(new Dictionary<string, object?> { ["epoch"] = 1.5 }, null));
        var missing = Path.Combine(_run, "nope.png");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => logger.LogEpoch(new Dictionary<string, object?> { ["epoch"] = 0 }, missing)).Message);
    }

    /// <summary>TFRecord framing: u64 length, masked CRC32C of the length, data, masked CRC32C of the data.</summary>
    private static List<byte[]> ReadRecords(byte[] file)
    {
        var records = new List<byte[]>();
        int pos = 0;
        while (pos < file.Length)
        {
            Assert.True(file.Length - pos >= 12, "truncated record header");
            var lengthBytes = file.AsSpan(pos, 8);
            var length = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes));
            Assert.Equal(MaskedCrc(lengthBytes), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(pos + 8, 4)));
            Assert.True(file.Length - pos >= 12 + length + 4, "truncated record");
            var data = file.AsSpan(pos + 12, length);
            Assert.Equal(MaskedCrc(data), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(pos + 12 + length, 4)));
            records.Add(data.ToArray());
            pos += 12 + length + 4;
        }
        return records;
    }

    private static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        crc = ~crc;
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }
}
