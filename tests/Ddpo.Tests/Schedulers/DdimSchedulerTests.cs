using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Schedulers;

public sealed class DdimSchedulerTests
{
    private static Dictionary<string, Tensor> Fixture() => SafetensorsFile.Load(TestPaths.Fixture("ddim_logprob.safetensors"));

    private static DdimScheduler StableDiffusionScheduler(int steps)
    {
        var s = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        s.SetTimesteps(steps);
        return s;
    }

    [Fact]
    public void AlphasCumprodAndTimestepsMatchDiffusers()
    {
        var f = Fixture();
        using var s = StableDiffusionScheduler(50);
        TensorAssert.Close(f["alphas_cumprod"], s.AlphasCumprod, atol: 1e-6, rtol: 1e-5, what: "alphas_cumprod");
        Assert.Equal(f["timesteps_50"].data<long>().ToArray(), s.Timesteps);
        Assert.Equal(981, s.Timesteps[0]);
        Assert.Equal(1, s.Timesteps[^1]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void LogProbOfGivenNextSampleMatchesDdpoPytorch(int c)
    {
        var f = Fixture();
        using var s = StableDiffusionScheduler(50);
        double eta = f[$"c{c}_eta"].item<float>();
        var r = s.Step(f[$"c{c}_eps"], f[$"c{c}_t"], f[$"c{c}_sample"], eta, prevSample: f[$"c{c}_prev"]);
        TensorAssert.Close(f[$"c{c}_logp"], r.LogProb, what: $"case {c} log-prob of the reference's sample");
        var other = s.Step(f[$"c{c}_eps"], f[$"c{c}_t"], f[$"c{c}_sample"], eta, prevSample: f[$"c{c}_other"]);
        TensorAssert.Close(f[$"c{c}_logp_other"], other.LogProb, what: $"case {c} log-prob of another sample");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void DrawnSampleIsDistributedAroundTheReferenceMean(int c)
    {
        // The reference drew c_prev from N(mean, std^2); our own draw must have the same mean and
        // spread: its log-prob per element must be close to the Gaussian entropy's negative.
        var f = Fixture();
        using var s = StableDiffusionScheduler(50);
        double eta = f[$"c{c}_eta"].item<float>();
        var gen = new Generator(seed: 1234);
        var r = s.Step(f[$"c{c}_eps"], f[$"c{c}_t"], f[$"c{c}_sample"], eta, generator: gen);
        var z = ((r.PrevSample - r.Mean) / r.Std);
        Assert.InRange(z.mean().item<float>(), -0.2, 0.2);
        Assert.InRange(z.std().item<float>(), 0.85, 1.15);
        var expected = -(0.5 + r.Std.log() + Math.Log(Math.Sqrt(2 * Math.PI))).mean(new long[] { 1, 2, 3 });
        TensorAssert.Close(expected, r.LogProb, atol: 0.1, rtol: 0, what: "log-prob of a fresh draw vs. minus entropy");
    }

    [Fact]
    public void LastStepClampsThePreviousTimestepToZero()
    {
        using var s = StableDiffusionScheduler(50);
        var x = randn(2, 4, 8, 8, generator: new Generator(seed: 3));
        var eps = randn(2, 4, 8, 8, generator: new Generator(seed: 4));
        var r = s.Step(eps, tensor(new long[] { 1, 1 }), x, 1.0, generator: new Generator(seed: 5), finalStep: DdimFinalStep.Ddpo);
        // t=1 -> prev clamps to 0: alpha_prev = alphas_cumprod[0], so the std is finite and positive.
        Assert.True(r.Std.isfinite().all().item<bool>());
        Assert.True((r.Std > 0).all().item<bool>());
        Assert.True(r.LogProb.isfinite().all().item<bool>());
    }

    [Fact]
    public void PredictionTypesAgreeOnTheCleanSample()
    {
        using var scope = NewDisposeScope();
        var eps = DdimSchedulerConfig.StableDiffusion();
        using var sEps = new DdimScheduler(eps);
        using var sV = new DdimScheduler(eps with { PredictionType = "v_prediction" });
        using var sX = new DdimScheduler(eps with { PredictionType = "sample" });
        foreach (var s in new[] { sEps, sV, sX }) s.SetTimesteps(10);
        var x0 = randn(2, 4, 8, 8, generator: new Generator(seed: 7));
        var noise = randn(2, 4, 8, 8, generator: new Generator(seed: 8));
        var t = tensor(new long[] { 901, 501 });
        var xt = sEps.AddNoise(x0, noise, t);
        var prev = randn(2, 4, 8, 8, generator: new Generator(seed: 9));
        var a = sEps.Step(sEps.TrainingTarget(x0, noise, t), t, xt, 1.0, prevSample: prev);
        var b = sV.Step(sV.TrainingTarget(x0, noise, t), t, xt, 1.0, prevSample: prev);
        var c = sX.Step(sX.TrainingTarget(x0, noise, t), t, xt, 1.0, prevSample: prev);
        TensorAssert.Close(x0, a.PredOriginalSample, atol: 1e-4, what: "epsilon x0");
        TensorAssert.Close(x0, b.PredOriginalSample, atol: 1e-4, what: "v x0");
        TensorAssert.Close(a.LogProb, b.LogProb, atol: 1e-3, what: "v log-prob");
        TensorAssert.Close(a.LogProb, c.LogProb, atol: 1e-3, what: "sample log-prob");
    }

    [Fact]
    public void SchedulerConfigErrorsNameTheField()
    {
        var dir = TestPaths.NewTempDir();
        var path = Path.Combine(dir, "scheduler_config.json");
        File.WriteAllText(path, """{"_class_name":"PNDMScheduler","beta_schedule":"cubic"}""");
        var e = Assert.Throws<ConfigException>(() => DdimSchedulerConfig.Load(path));
        Assert.Contains("beta_schedule", e.Message);
        Assert.Contains(path, e.Message);
        File.WriteAllText(path, """{"thresholding":true}""");
        Assert.Contains("thresholding", Assert.Throws<ConfigException>(() => DdimSchedulerConfig.Load(path)).Message);
        File.WriteAllText(path, DdimSchedulerConfig.StableDiffusion().ToJson());
        Assert.Equal(DdimSchedulerConfig.StableDiffusion(), DdimSchedulerConfig.Load(path));
        Directory.Delete(dir, true);
    }
}
