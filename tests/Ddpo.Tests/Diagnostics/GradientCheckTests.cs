using Ddpo.Cli;
using Ddpo.Diagnostics;
using Ddpo.Runtime;
using Ddpo.Tests.Cli;
using Ddpo.Tests.Support;
using Ddpo.Tests.Training;
using Xunit;

namespace Ddpo.Tests.Diagnostics;

/// <summary>
/// Float32 gradients against float64 (same op, same input) for every layer type training goes through, on this
/// machine's default kernels: issue 19's wrong oneDNN backward convolution gave 19-32% errors and NaN here.
/// </summary>
public sealed class GradientCheckTests
{
    [Fact]
    public void EveryLayerTypeModelAndTheDdpoLossMatchFloat64()
    {
        using var check = new GradientCheck();
        var report = check.Run(repetitions: 3);
        foreach (var name in new[]
                 {
                     "conv 3x3, batch 2", "conv 3x3, batch 4", "conv 1x1", "conv 3x3, stride 2", "group norm", "layer norm", "linear",
                     "attention (self)", "attention (cross)", "tiny UNet (input and all weights)", "tiny VAE decoder",
                     "DDPO loss (UNet, DDIM step log-prob, clipped ratio)",
                 })
        {
            Assert.Contains(report.Rows, r => r.Name == name);
        }
        Assert.True(report.Passed, report.DescribeFailures());
        Assert.All(report.Rows, r =>
        {
            Assert.InRange(r.WorstError, 0, GradientCheck.Tolerance);
            Assert.True(r.Finite && r.Repeatable, r.Name);
        });
    }

    [Fact]
    public void TheTinyUnetGradientIsRightTwentyTimesInAProcess()
    {
        using var check = new GradientCheck();
        var report = check.Run(repetitions: 20, only: name => name.StartsWith("tiny UNet", StringComparison.Ordinal));
        var row = Assert.Single(report.Rows);
        Assert.Equal(20, row.Runs);
        Assert.True(report.Passed, report.DescribeFailures());
        Assert.True(row.Repeatable, "the 20 float32 runs differ");
    }

    [Fact]
    public void AWrongGradientFailsTheCheckAndIsNamed()
    {
        // What issue 19's convolution did: 19-32% off. The check must see it (the hook changes only the named case).
        using var check = new GradientCheck(includeModels: false);
        var good = check.Run(2);
        Assert.True(good.Passed);
        var bad = Assert.Single(new GradientCheck(includeModels: false).Run(2, only: n => n == "conv 3x3, batch 2",
            change: g => g * 1.2).Failures);
        Assert.Equal("conv 3x3, batch 2", bad.Name);
        Assert.Equal(2, bad.WrongRuns);
        Assert.InRange(bad.WorstError, 0.19, 0.21);
        var nan = Assert.Single(new GradientCheck(includeModels: false).Run(1, only: n => n == "conv 1x1",
            change: g => g.index_fill(0, TorchSharp.torch.tensor(new long[] { 0 }), double.NaN)).Failures);
        Assert.False(nan.Finite);
        Assert.Contains("NaN", new GradientCheckReport([nan], GradientCheck.Tolerance).DescribeFailures());
    }

    [Fact]
    public void CpuFeaturesAreReadFromCpuinfo()
    {
        var file = Path.Combine(TestPaths.NewTempDir(), "cpuinfo");
        File.WriteAllText(file, "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC 9B45\n" +
            "flags\t\t: fpu avx2 avx512f avx512_bf16 avx_vnni avx512_vp2intersect\n\nprocessor\t: 1\nvendor_id\t: Other\n");
        var zen5 = CpuFeatures.Read(file);
        Assert.Equal(("AuthenticAMD", 26, 2, "AMD EPYC 9B45"), (zen5.Vendor, zen5.Family, zen5.Model, zen5.ModelName));
        Assert.True(zen5.IsZen5OrLater);
        Assert.Equal(["avx2", "avx512f", "avx512_bf16", "avx_vnni", "avx512_vp2intersect"], zen5.PresentKernelFlags);
        File.WriteAllText(file, "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nflags\t\t: avx2 avx512f avx512_bf16\n");
        Assert.False(CpuFeatures.Read(file).IsZen5OrLater);
        Assert.Equal(CpuKernelProfile.Safe, CpuKernels.Parse(" SAFE "));
        Assert.Equal(CpuKernelProfile.Im2col, CpuKernels.Parse("im2col"));
        Assert.Contains("expected auto, default, safe or im2col", Assert.Throws<ArgumentException>(() => CpuKernels.Parse("fast")).Message);
    }
}

/// <summary>
/// What a user sees: <c>ddpo doctor</c> in its own process (so that the safe kernels' start-up settings take effect),
/// and <c>ddpo train</c> refusing wrong gradients (alone: the check's fault hook is process-wide).
/// </summary>
[Collection(AloneCollection.Name)]
public sealed class DoctorAndTrainRefusalTests
{
    [Theory]
    [InlineData("default", "oneDNN convolutions")]
    [InlineData("safe", "oneDNN convolutions (output channels padded to 8 where they take a gradient), flash attention, NNPACK off, DNNL_MAX_CPU_ISA=AVX2 (set by ddpo)")]
    [InlineData("im2col", "im2col + BLAS convolutions (oneDNN off), math attention, NNPACK off, DNNL_MAX_CPU_ISA=AVX2 (set by ddpo)")]
    public async Task DoctorSaysWhetherTrainingCanBeTrusted(string kernels, string described)
    {
        var (code, output) = await CliProcess.RunAsync(1, ["doctor", "--repeats", "2", "--cpu-kernels", kernels], TimeSpan.FromMinutes(3));
        Assert.Contains(described, output);
        if (kernels == "default" && CpuFeatures.Current.IsZen5OrLater)
        {
            // libtorch's own kernels are wrong here in most runs (docs/cpu-gradients.md): the verdict may go either
            // way, but it must say so and the exit code must agree with it.
            Assert.True(output.Contains("training here can be trusted: yes") ? code == 0 : code == CliApp.WrongGradients
                && output.Contains("training here can be trusted: NO"), output);
        }
        else
        {
            Assert.True(code == 0, output);
            Assert.Contains("training here can be trusted: yes", output);
        }
        Assert.Contains("cpu:      ", output);
        Assert.Contains("libtorch: ", output);
        Assert.Contains("tiny UNet (input and all weights)", output);
        Assert.Contains("DDPO loss", output);
        // With oneDNN off every convolution asked NNPACK, which logged a warning per ask on CPUs it does not support (Zen 5).
        if (kernels != "default") Assert.DoesNotContain("Could not initialize NNPACK", output);
    }

    [Fact]
    public void TrainRefusesWrongGradientsWithExitCode3AndWritesNothing()
    {
        var run = Path.Combine(TestPaths.NewTempDir(), "run");
        string[] args =
        [
            "train", "--preset", "compressibility", "--model", TinyModels.Pixel, "--run-dir", run, "--epochs", "1",
            "--set", "prompt_fn=animals_train", "--set", "sample.num_steps=2", "--set", "sample.batch_size=4",
            "--set", "sample.num_batches_per_epoch=1", "--set", "train.batch_size=4", "--set", "train.gradient_accumulation_steps=1",
            "--set", "pretrained.dtype=fp32", "--set", "logging.num_eval_images=2", "--device", "cpu",
            "--cpu-kernels", "default",
        ];
        GradientCheck.FaultForTests = ("tiny UNet (input and all weights)", g => g.nan_to_num().add(1.0));
        try
        {
            var (code, output) = CliTests.Capture(() => CliApp.Run(args));
            Assert.True(code == CliApp.WrongGradients, output);
            Assert.Equal(3, code);
            Assert.Contains("training refused: float32 gradients on this cpu are wrong", output);
            Assert.Contains("tiny UNet", output);
            Assert.Contains("ddpo doctor", output);
            Assert.False(Directory.Exists(run), "a refused run writes no folder");
        }
        finally
        {
            GradientCheck.FaultForTests = null;
        }
        // Without the fault the same command trains, and its log says the check passed.
        var (ok, log) = CliTests.Capture(() => CliApp.Run(args));
        Assert.True(ok == 0, log);
        Assert.Contains("gradient check on cpu", log);
    }
}
