using System.Diagnostics;
using Ddpo.Cli;
using Ddpo.Tests.Pipelines;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Cli;

/// <summary>
/// Corrupt files given to the command line end with exit code 2 and one message naming the file: no unhandled
/// exception, no stack trace, no SIGABRT (exit 134).
/// </summary>
[Collection("cli")]
public sealed class CorruptFileCliTests
{
    /// <summary>A copy of the pixel tiny pipeline whose UNet weight file has an invalid UTF-8 byte in a key.</summary>
    private static (string Root, string Model, string Weights) CorruptModel()
    {
        var root = TestPaths.NewTempDir("ddpo-corrupt");
        var model = Path.Combine(root, "model");
        TextToImagePipelineTests.CopyDirectory(TinyModels.Pixel, model);
        var weights = Path.Combine(model, "unet", "diffusion_pytorch_model.safetensors");
        var bytes = SafetensorsBytes.Read(weights);
        File.WriteAllBytes(weights, bytes.WithKeyByte(bytes.Tensors.First().Name, 0xFF));
        return (root, model, weights);
    }

    /// <summary>The console wraps long lines (and paths) at its width, so whitespace is ignored in the comparison.</summary>
    private static void AssertMentions(string output, string expected)
    {
        static string Squash(string s) => string.Concat(s.Where(c => !char.IsWhiteSpace(c)));
        Assert.True(Squash(output).Contains(Squash(expected), StringComparison.Ordinal), $"output does not mention {expected}:\n{output}");
    }

    [Fact]
    public void SampleWithAnInvalidUtf8KeyInTheUNetIsACleanError()
    {
        var (root, model, weights) = CorruptModel();
        try
        {
            var (code, output) = CliTests.Capture(() => CliApp.Run(["sample", "--model", model, "--prompt", "a cat", "--steps", "2", "--out", Path.Combine(root, "out")]));
            Assert.Equal(CliApp.BadInput, code);
            AssertMentions(output, "not valid UTF-8");
            AssertMentions(output, weights);
            Assert.DoesNotContain("   at ", output);
            Assert.False(File.Exists(Path.Combine(root, "out", "grid.png")));
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    /// <summary>The same as a separate process, as a user runs it: the exit code is 2, not 134, and stderr has no trace.</summary>
    [Fact]
    public async Task TheDdpoProcessExitsWithCode2AndNoStackTrace()
    {
        var (root, model, weights) = CorruptModel();
        try
        {
            var cli = Path.Combine(AppContext.BaseDirectory, "ddpo.dll");
            Assert.True(File.Exists(cli), cli);
            var start = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in new[] { cli, "sample", "--model", model, "--prompt", "a cat", "--steps", "2", "--out", Path.Combine(root, "out") })
            {
                start.ArgumentList.Add(arg);
            }
            start.Environment["COLUMNS"] = "400";
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await process.WaitForExitAsync(timeout.Token);
            var output = await stdout + await stderr;
            Assert.Equal(CliApp.BadInput, process.ExitCode);
            AssertMentions(output, "not valid UTF-8");
            AssertMentions(output, weights);
            Assert.DoesNotContain("Unhandled exception", output);
            Assert.DoesNotContain("   at ", output);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Theory]
    [InlineData("invalid UTF-8", new byte[] { 0x7B, 0x22, 0x65, 0x70, 0x6F, 0x63, 0x68, 0x22, 0x3A, 0x20, 0x30, 0x2C, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D, 0x0A })]
    [InlineData("not JSON", new byte[] { 0x67, 0x61, 0x72, 0x62, 0x61, 0x67, 0x65, 0x0A })]
    public void ReportOnACorruptMetricsFileIsACleanError(string what, byte[] content)
    {
        var root = TestPaths.NewTempDir("ddpo-corrupt-run");
        try
        {
            File.WriteAllBytes(Path.Combine(root, "metrics.jsonl"), content);
            var (code, output) = CliTests.Capture(() => CliApp.Run(["report", root]));
            Assert.True(code == CliApp.BadInput, $"{what}: exit code {code}, output {output}");
            AssertMentions(output, Path.Combine(root, "metrics.jsonl"));
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }
}
