using System.Text.Json.Nodes;
using Ddpo.Cli;
using Ddpo.Models.Loading;
using Ddpo.Tests.Models;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Cli;

/// <summary><c>ddpo convert</c>: a pickle checkpoint becomes a safetensors file with the same tensors; bad input is exit code 2 with the message.</summary>
[Collection("cli")]
public sealed class ConvertCliTests
{
    [Theory]
    [InlineData("plain", 16, 96)]
    [InlineData("module", 7, 17)]
    public void ConvertWritesTheSameTensorsAsSafetensors(string name, int tensors, int parameters)
    {
        var dir = TestPaths.NewTempDir("ddpo-convert");
        try
        {
            var source = TorchCheckpointTests.Fixture(name + ".pt");
            var output = Path.Combine(dir, name + ".safetensors");
            var (code, text) = CliTests.Capture(() => CliApp.Run(["convert", source, "--out", output]));
            Assert.True(code == 0, text);
            Assert.Contains($"read {tensors} tensors ({parameters} parameters)", text);
            using var scope = NewDisposeScope();
            TorchCheckpointTests.AssertSameTensors(TorchCheckpoint.Load(source), SafetensorsFile.Load(output));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void StripPrefixRenamesAndSkippedValuesAreReported()
    {
        var dir = TestPaths.NewTempDir("ddpo-convert");
        try
        {
            var output = Path.Combine(dir, "out.safetensors");
            var (code, text) = CliTests.Capture(() => CliApp.Run(["convert", TorchCheckpointTests.Fixture("nested.pt"), "--out", output, "--strip-prefix", "layer."]));
            Assert.True(code == 0, text);
            Assert.Contains("skipped 2 value(s) that are not tensors: epoch, name", text);
            using var scope = NewDisposeScope();
            var written = SafetensorsFile.Load(output);
            var original = TorchCheckpoint.Load(TorchCheckpointTests.Fixture("nested.pt"));
            Assert.Equal(["bias", "weight"], written.Keys.Order(StringComparer.Ordinal));
            Assert.Equal(original["layer.weight"].bytes, written["weight"].bytes);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    public static TheoryData<string[], string> BadInputs => new()
    {
        { ["evil_os_system.pt"], "refuses to load 'posix.system'" },
        { ["legacy.pt"], "legacy format: re-save with torch >= 1.6" },
        { ["missing.pt"], "checkpoint file not found" },
        { ["nested.pt", "--strip-prefix", "module."], "--strip-prefix 'module.': no tensor name in" },
        { ["nested.pt", "--strip-prefix", "layer.weight"], "'layer.weight' would become '', an empty name" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInputIsExitCode2WithTheMessage(string[] args, string message)
    {
        var marker = (string)JsonNode.Parse(File.ReadAllText(TorchCheckpointTests.Fixture("expected.json")))!["marker"]!;
        if (File.Exists(marker)) File.Delete(marker);
        var dir = TestPaths.NewTempDir("ddpo-convert");
        try
        {
            var output = Path.Combine(dir, "out.safetensors");
            string[] argv = ["convert", TorchCheckpointTests.Fixture(args[0]), "--out", output, .. args[1..]];
            var (code, text) = CliTests.Capture(() => CliApp.Run(argv));
            Assert.Equal(CliApp.BadInput, code);
            var flat = string.Concat(text.Where(c => !char.IsWhiteSpace(c)));
            Assert.Contains(string.Concat(message.Where(c => !char.IsWhiteSpace(c))), flat);
            Assert.DoesNotContain("   at ", text);
            Assert.False(File.Exists(output));
            Assert.False(File.Exists(marker));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void TheOutputCannotBeTheCheckpointItself()
    {
        var source = TorchCheckpointTests.Fixture("plain.pt");
        var (code, text) = CliTests.Capture(() => CliApp.Run(["convert", source, "--out", source]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("isthecheckpointitself", string.Concat(text.Where(c => !char.IsWhiteSpace(c))));
    }
}
