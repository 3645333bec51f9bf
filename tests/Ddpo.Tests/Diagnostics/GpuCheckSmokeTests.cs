using System.Diagnostics;
using System.Text.Json;
using Ddpo.Cli;
using Ddpo.Diagnostics;
using Ddpo.Tests.Cli;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Diagnostics;

/// <summary>
/// The GPU check's CPU smoke mode, run for real the way the GPU machine runs it (<c>tools/gpu/check.sh</c>: PyTorch's
/// half, then <c>ddpo gpu-check</c> as a separate process), so that the kit cannot rot while no GPU is at hand.
/// </summary>
[Collection("cli")]
public sealed class GpuCheckSmokeTests
{
    private static readonly string[] SmokeSpeedKeys =
        ["unet_forward_fp16_b4", "unet_forward_bf16_b4", "lora_train_step_b2", "lora_train_step_b4", "vae_decode_b2", "sampling_4x2", "ddpo_epoch"];

    private static (int Code, string Output) RunCheckScript(string outDir)
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "ddpo.dll");
        var start = new ProcessStartInfo("bash")
        {
            ArgumentList =
            {
                Path.Combine(TestPaths.RepoRoot, "tools", "gpu", "check.sh"), "--smoke", "--out", outDir,
                "--fixtures", TestPaths.Fixtures, "--ddpo", $"dotnet {cli}",
                // half precision is slow on a CPU: its rows are tested on three fixtures below
                "--", "--threads", "1", "--half-dtypes", "none",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(180_000), "check.sh --smoke did not finish in 3 minutes");
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    // torch alone is not enough: torch_bench.py skips its half without diffusers (e.g. Debian's python3-torch, which the
    // refenv's setup.sh installs system-wide, with diffusers only on the refenv's PYTHONPATH).
    private static bool PythonHasTorch()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("python3", "-c \"import torch, diffusers\"") { RedirectStandardError = true, RedirectStandardOutput = true })!;
            p.WaitForExit(60_000);
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // no python3 at all
        }
    }

    [Fact]
    public void CheckScriptSmokeRunWritesBothTablesAndPassesTheFixturesOnTheCpu()
    {
        var dir = TestPaths.NewTempDir("ddpo-gpu-check");
        try
        {
            var (code, output) = RunCheckScript(dir);
            Assert.True(code == 0, output);
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, GpuCheckReport.JsonName)));
            var root = doc.RootElement;
            Assert.Equal("smoke", root.GetProperty("mode").GetString());
            Assert.Equal("cpu", root.GetProperty("environment").GetProperty("ours").GetProperty("device").GetString());
            Assert.Contains("libtorch_cpu.so", root.GetProperty("environment").GetProperty("ours").GetProperty("libtorch_path").GetString());

            // every fixture compared in fp32 against PyTorch's numbers, every row within 1e-4
            var correctness = root.GetProperty("correctness").EnumerateArray().ToList();
            Assert.True(root.GetProperty("correctness_passed").GetBoolean());
            Assert.Equal(FixtureParity.FixtureNames.OrderBy(n => n), correctness.Select(r => r.GetProperty("fixture").GetString()!).Distinct().OrderBy(n => n));
            Assert.Equal(16, correctness.Count);
            Assert.All(correctness, r =>
            {
                Assert.Equal("fp32", r.GetProperty("dtype").GetString());
                Assert.True(r.GetProperty("passed").GetBoolean(), r.ToString());
                Assert.InRange(r.GetProperty("max_abs_error").GetDouble(), 0, 1e-4);
            });

            // fp16 health: unscaled fp16 gradients are far from fp32, scaled ones close
            var health = root.GetProperty("fp16_health").EnumerateArray().ToDictionary(h => h.GetProperty("variant").GetString()!);
            Assert.Equal(["fp32", "fp16", "fp16 + loss scaling", "bf16"], health.Keys);
            Assert.True(health["fp32"].GetProperty("grad_norm").GetDouble() > 0);
            Assert.True(health["fp16 + loss scaling"].GetProperty("relative_error_vs_fp32").GetDouble() < 0.05);
            Assert.True(health["fp16"].GetProperty("relative_error_vs_fp32").GetDouble() > 0.2);

            // our speed rows, with the epoch's phases; PyTorch's side skipped with a reason where torch is missing
            var speed = root.GetProperty("speed").EnumerateArray().ToDictionary(s => s.GetProperty("key").GetString()!);
            Assert.Equal(SmokeSpeedKeys.Order(), speed.Keys.Order());
            Assert.All(speed.Values, s => Assert.True(s.GetProperty("ours_ms").GetDouble() > 0, s.ToString()));
            var epoch = speed["ddpo_epoch"].GetProperty("ours");
            foreach (var phase in new[] { "sampling_s", "reward_s", "training_s", "peak_memory_gib" })
            {
                Assert.True(epoch.GetProperty(phase).GetDouble() > 0, phase);
            }
            if (PythonHasTorch())
            {
                Assert.All(speed.Values, s => Assert.True(s.GetProperty("ratio_pytorch_over_ours").GetDouble() > 0, s.ToString()));
            }
            else
            {
                Assert.Matches("import (torch|diffusers) failed", root.GetProperty("pytorch_skipped").GetString());
                Assert.Contains("PyTorch half skipped", output);
            }
            Assert.Empty(root.GetProperty("errors").EnumerateArray());

            var md = File.ReadAllText(Path.Combine(dir, GpuCheckReport.MarkdownName));
            Assert.Contains("## Correctness on cpu: PASS", md);
            Assert.Contains("| row | ours ms | PyTorch ms | PyTorch/ours | GFLOP/call | GFLOP/s | % of peak | what |", md);
            Assert.Matches(PythonHasTorch() ? @"min ratio \d+\.\d\d over \d+ rows" : "min ratio - over 0 rows", md);
            Assert.All(SmokeSpeedKeys, key => Assert.Contains($"| {key} |", md));
            Assert.Contains("| fp16 + loss scaling |", md);
        }
        finally
        {
            ModelFixturesCleanup(dir);
        }
    }

    [Fact]
    public void HalfPrecisionRowsAreComparedWithFp32OnTheSameDevice()
    {
        var rows = FixtureParity.Run(TestPaths.Fixtures, CPU, [ScalarType.Float16], only: ["vae_tiny", "clip_text_tiny", "ddim_logprob"]);
        var fp32 = rows.Where(r => r.DType == "fp32").ToList();
        var fp16 = rows.Where(r => r.DType == "fp16").ToList();
        Assert.Equal(3 + 2 + 6, fp32.Count);
        Assert.All(fp32, r => Assert.True(r.Passed, $"{r.Fixture}/{r.Output}: {r.MaxAbsError}"));
        Assert.Equal(fp32.Select(r => (r.Fixture, r.Output)), fp16.Select(r => (r.Fixture, r.Output)));
        Assert.All(fp16, r =>
        {
            Assert.Equal("fp32 on cpu", r.Reference);
            Assert.Null(r.Passed);
            // rounded to fp16 somewhere: a real, small difference
            Assert.InRange(r.MaxAbsError, 1e-7, 0.1);
            Assert.InRange(r.RelativeError, 1e-8, 1e-2);
        });
    }

    [Fact]
    public void BadArgumentsNameTheOption()
    {
        var dir = TestPaths.NewTempDir("ddpo-gpu-check-bad");
        try
        {
            var (code, text) = CliTests.Capture(() => CliApp.Run(["gpu-check", "--smoke", "--out", dir, "--fixtures", Path.Combine(dir, "nope")]));
            Assert.Equal(CliApp.BadInput, code);
            Assert.Contains("--fixtures", text);
            (code, text) = CliTests.Capture(() => CliApp.Run(["gpu-check", "--out", dir, "--fixtures", TestPaths.Fixtures, "--device", "cpu"]));
            Assert.Equal(CliApp.BadInput, code);
            Assert.Contains("--smoke", text);
            (code, text) = CliTests.Capture(() => CliApp.Run(["gpu-check", "--smoke", "--out", dir, "--fixtures", TestPaths.Fixtures, "--sections", "speedy"]));
            Assert.Equal(CliApp.BadInput, code);
            Assert.Contains("speedy", text);
        }
        finally
        {
            ModelFixturesCleanup(dir);
        }
    }

    [Fact]
    public void PyTorchResultsAreMergedByKeyWithTheirRatio()
    {
        var dir = TestPaths.NewTempDir("ddpo-gpu-check-merge");
        try
        {
            var torchFile = Path.Combine(dir, "torch-bench.json");
            File.WriteAllText(torchFile, """
                {"environment": {"torch": "2.11.0", "gpu": "NVIDIA H200"},
                 "rows": [{"key": "unet_forward_fp16_b16", "what": "UNet forward", "ms": 49.6, "extra": {"tflops": 259.0}},
                          {"key": "vae_decode_b8", "what": "VAE decode", "ms": 111.0, "extra": {}}],
                 "errors": ["sampling: RuntimeError: out of memory"], "skipped": null}
                """);
            var report = new GpuCheckReport { Mode = "full", TorchResultsPath = torchFile };
            report.Speed.Add(new SpeedRow("unet_forward_fp16_b16", "UNet forward, fp16, batch 16", 24.8, new Dictionary<string, double> { ["tflops"] = 518 }));
            report.Speed.Add(new SpeedRow("lora_train_step_b8", "LoRA step", 100, new Dictionary<string, double>()));
            report.Write(dir);
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, GpuCheckReport.JsonName)));
            var speed = doc.RootElement.GetProperty("speed").EnumerateArray().ToDictionary(s => s.GetProperty("key").GetString()!);
            Assert.Equal(2.0, speed["unet_forward_fp16_b16"].GetProperty("ratio_pytorch_over_ours").GetDouble(), 6);
            Assert.Equal(49.6, speed["unet_forward_fp16_b16"].GetProperty("earlier_pytorch_h200_ms").GetDouble());
            Assert.Equal(JsonValueKind.Null, speed["lora_train_step_b8"].GetProperty("pytorch_ms").ValueKind);
            Assert.Equal(JsonValueKind.Null, speed["vae_decode_b8"].GetProperty("ours_ms").ValueKind);
            Assert.Equal("2.11.0", doc.RootElement.GetProperty("environment").GetProperty("pytorch").GetProperty("torch").GetString());
            Assert.Contains("pytorch: sampling: RuntimeError: out of memory", doc.RootElement.GetProperty("errors").EnumerateArray().Select(e => e.GetString()));
            var md = File.ReadAllText(Path.Combine(dir, GpuCheckReport.MarkdownName));
            // side_by_side.sh's columns: GFLOP/call = 518 TFLOP/s x 24.8 ms, GFLOP/s = 518,000; no GPU peak yet.
            Assert.Contains("| unet_forward_fp16_b16 | 24.8 | 49.6 | 2.00 | 12846.4 | 518000 | — | UNet forward, fp16, batch 16 | 49.6 |", md);
            Assert.Contains("min ratio 2.00 over 1 rows", md);
            Assert.Contains("| gpu |  | NVIDIA H200 |", md);
        }
        finally
        {
            ModelFixturesCleanup(dir);
        }
    }

    private static void ModelFixturesCleanup(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }
}
