using System.Diagnostics;
using System.Text.Json;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Diagnostics;

/// <summary>
/// <c>tools/cpu/profile.sh</c> run for real on the CLI (oneDNN's timings only: perf is not on every machine), so that
/// the profile of docs/cpu-profile.md can be made again: the default run's training micro-step, whose convolutions
/// oneDNN computes forward and backward on every kernel profile but im2col.
/// </summary>
[Collection("cli")]
public sealed class CpuProfileScriptTests
{
    [Fact]
    public async Task ProfileScriptTimesTheRowAndListsOneDnnsConvolutions()
    {
        var dir = TestPaths.NewTempDir("ddpo-cpu-profile");
        try
        {
            var start = new ProcessStartInfo("bash")
            {
                ArgumentList =
                {
                    Path.Combine(TestPaths.RepoRoot, "tools", "cpu", "profile.sh"), "--rows", "train_step_b4", "--repeats", "2",
                    "--threads", "1", "--no-perf", "--ddpo", $"dotnet {Path.Combine(AppContext.BaseDirectory, "ddpo.dll")}",
                },
                Environment = { ["OUT"] = dir },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail("profile.sh did not finish in 3 minutes");
            }
            string output = await stdout + await stderr;
            Assert.True(process.ExitCode == 0, output);
            Assert.Contains("## train_step_b4:", output);

            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "profile.json")));
            var row = Assert.Single(doc.RootElement.GetProperty("rows").EnumerateArray());
            Assert.Equal("train_step_b4", row.GetProperty("row").GetString());
            double median = row.GetProperty("median_ms").GetDouble();
            Assert.True(median > 0, output);
            var primitives = row.GetProperty("onednn").EnumerateArray().ToList();
            var directions = primitives.Where(p => p.GetProperty("primitive").GetString() == "convolution")
                .Select(p => p.GetProperty("direction").GetString()).ToHashSet();
            // LoRA on the attention only: the convolutions' weights are frozen, so no backward_weights.
            Assert.True(directions.SetEquals(["forward_training", "backward_data"]), output);
            double onednn = primitives.Sum(p => p.GetProperty("ms").GetDouble());
            Assert.True(onednn > 0 && onednn < median, $"oneDNN's {onednn} ms per call against a {median} ms call\n{output}");
            Assert.All(primitives, p => Assert.True(p.GetProperty("calls").GetDouble() > 0));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
