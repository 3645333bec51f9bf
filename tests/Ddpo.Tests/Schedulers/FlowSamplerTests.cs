using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Schedulers;

/// <summary>
/// The flow-matching samplers against their references (refenv/flowgrpo_sde): Flow-GRPO's <c>sde_step_with_logprob</c>
/// and Flow-Factory's Flow-SDE, Dance-SDE and CPS steps on the SD3 scheduler after <c>set_timesteps(10)</c>, noise
/// level 0.7, a batch at step indices [0, 1, 5, 9] (σ = 1, middle, the last step to σ = 0): drawn samples, re-scored
/// samples under a perturbed model output, means, stds, log-probabilities and the gradient of the log-probability.
/// </summary>
public sealed class FlowSamplerTests
{
    private const double NoiseLevel = 0.7;
    private static readonly string Folder = TestPaths.Fixture("refenv", "flowgrpo_sde");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static FlowMatchEulerDiscreteScheduler Scheduler() =>
        FlowMatchEulerDiscreteScheduler.FromConfigFile(Path.Combine(Folder, "scheduler", "scheduler_config.json"));

    // The fixture's per-item sigma and next sigma as [B, 1, 1, 1] (float32, as the references compute).
    private static (Tensor Sigma, Tensor SigmaNext) Sigmas(Dictionary<string, Tensor> io)
    {
        var index = io["step_index"];
        var sigmas = io["sigmas_all"];
        return (sigmas.index_select(0, index).view(-1, 1, 1, 1), sigmas.index_select(0, index + 1).view(-1, 1, 1, 1));
    }

    private static Tensor SqrtMinusDt(Dictionary<string, Tensor> io)
    {
        var (sigma, next) = Sigmas(io);
        return (sigma - next).sqrt();
    }

    // Flow-Factory's sampled tensors were drawn with torch.Generator().manual_seed(53); libtorch's CPU normal
    // sampler gives the same numbers here.
    private static Tensor Draw(long[] shape, ulong seed) => randn(shape, generator: new Generator(seed));

    [Fact]
    public void ScheduleIsTheSchedulersTimesteps()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = Scheduler();
        var sampler = new FlowSdeSampler(scheduler);
        var times = sampler.Schedule(10);
        Assert.Equal(ScalarType.Float32, times.dtype);
        TensorAssert.Close(io["timesteps_all"], times, atol: 0, rtol: 0, what: "timesteps");
        TensorAssert.Close(io["sigmas_all"], scheduler.Sigmas, atol: 0, rtol: 0, what: "sigmas");
        TensorAssert.Close(io["timestep"], io["timesteps_all"].index_select(0, io["step_index"]), atol: 0, rtol: 0, what: "fixture times");
    }

    [Fact]
    public void FlowGrpoSampledStepMatches()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = Scheduler();
        var sampler = new FlowSdeSampler(scheduler);
        sampler.Schedule(10).Dispose();
        var step = sampler.Step(io["model_output"], io["timestep"], io["sample"], NoiseLevel, noise: io["eps"]);
        TensorAssert.Close(io["prev_sample_mean"], step.Mean, what: "prev_sample_mean");
        TensorAssert.Close(io["std_dev_t"] * SqrtMinusDt(io), step.Std, what: "std (std_dev_t * sqrt(-dt))");
        TensorAssert.Close(io["prev_sample"], step.Next, what: "prev_sample");
        TensorAssert.Close(io["log_prob"], step.LogProb, what: "log_prob");
        var (sigma, _) = Sigmas(io);
        TensorAssert.Close(io["std_dev_t"], sampler.StdDevT(sigma, NoiseLevel), what: "std_dev_t (sigma = 1 uses sigmas[1])");
        // The generator that drew it: the same draw from the same seed.
        TensorAssert.Close(io["eps"], Draw(io["sample"].shape, 52), atol: 2e-4, what: "eps from torch's generator seed 52");
    }

    [Fact]
    public void FlowGrpoRescoredStepAndItsGradientMatch()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = Scheduler();
        var sampler = new FlowSdeSampler(scheduler);
        sampler.Schedule(10).Dispose();
        var output = io["given.model_output"].detach().requires_grad_(true);
        var step = sampler.Step(output, io["timestep"], io["sample"], NoiseLevel, next: io["prev_sample"]);
        TensorAssert.Close(io["prev_sample"], step.Next, atol: 0, rtol: 0, what: "the recorded sample");
        TensorAssert.Close(io["given.prev_sample_mean"], step.Mean, what: "given.prev_sample_mean");
        TensorAssert.Close(io["given.std_dev_t"] * SqrtMinusDt(io), step.Std, what: "given std");
        TensorAssert.Close(io["given.log_prob"], step.LogProb, what: "given.log_prob");
        (step.LogProb * io["given.grad_w"]).sum().backward();
        TensorAssert.Close(io["given.grad_model_output"], output.grad!, atol: 1e-6, rtol: 1e-3, what: "d sum(log_prob w) / d model_output");
    }

    [Fact]
    public void FlowFactoryFlowSdeIsFlowGrpos()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = Scheduler();
        var sampler = FlowSamplers.Create("flow_sde", scheduler);
        Assert.IsType<FlowSdeSampler>(sampler);
        sampler.Schedule(10).Dispose();
        var step = sampler.Step(io["given.model_output"], io["timestep"], io["sample"], NoiseLevel, next: io["prev_sample"]);
        TensorAssert.Close(io["ff.flow_sde.next_latents_mean"], step.Mean, what: "ff flow_sde mean");
        TensorAssert.Close(io["ff.flow_sde.std_dev_t"] * SqrtMinusDt(io), step.Std, what: "ff flow_sde std");
        TensorAssert.Close(io["ff.flow_sde.log_prob"], step.LogProb, what: "ff flow_sde log_prob");
        var drawn = sampler.Step(io["given.model_output"], io["timestep"], io["sample"], NoiseLevel, noise: Draw(io["sample"].shape, 53));
        TensorAssert.Close(io["ff.flow_sde.sampled_next_latents"], drawn.Next, what: "ff flow_sde sampled");
        TensorAssert.Close(io["ff.flow_sde.sampled_log_prob"], drawn.LogProb, what: "ff flow_sde sampled log_prob");
    }

    [Fact]
    public void DanceSdeMatchesFlowFactory()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = Scheduler();
        var sampler = FlowSamplers.Create("dance_sde", scheduler);
        Assert.IsType<DanceSdeSampler>(sampler);
        sampler.Schedule(10).Dispose();
        var step = sampler.Step(io["given.model_output"], io["timestep"], io["sample"], NoiseLevel, next: io["prev_sample"]);
        TensorAssert.Close(io["ff.dance_sde.next_latents_mean"], step.Mean, what: "dance mean");
        TensorAssert.Close(io["ff.dance_sde.std_dev_t"] * SqrtMinusDt(io), step.Std, what: "dance std (noise_level * sqrt(-dt))");
        TensorAssert.Close(io["ff.dance_sde.log_prob"], step.LogProb, what: "dance log_prob");
        var drawn = sampler.Step(io["given.model_output"], io["timestep"], io["sample"], NoiseLevel, noise: Draw(io["sample"].shape, 53));
        TensorAssert.Close(io["ff.dance_sde.sampled_next_latents"], drawn.Next, what: "dance sampled");
        TensorAssert.Close(io["ff.dance_sde.sampled_log_prob"], drawn.LogProb, what: "dance sampled log_prob");
    }

    [Fact]
    public void CpsMatchesFlowFactoryAndItsGaussianIsExact()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = Scheduler();
        var ff = new CpsSampler(scheduler, flowFactoryLogProb: true);
        var sampler = FlowSamplers.Create("cps", scheduler);
        Assert.False(Assert.IsType<CpsSampler>(sampler).FlowFactoryLogProb);
        ff.Schedule(10).Dispose();
        var step = ff.Step(io["given.model_output"], io["timestep"], io["sample"], NoiseLevel, next: io["prev_sample"]);
        TensorAssert.Close(io["ff.cps.next_latents_mean"], step.Mean, what: "cps mean");
        TensorAssert.Close(io["ff.cps.std_dev_t"], step.Std, what: "cps std (sigma_next * sin(noise_level pi / 2))");
        TensorAssert.Close(io["ff.cps.log_prob"], step.LogProb, what: "cps log_prob (Flow-Factory's -mean((x - mean)^2))");
        var drawn = ff.Step(io["given.model_output"], io["timestep"], io["sample"], NoiseLevel, noise: Draw(io["sample"].shape, 53));
        TensorAssert.Close(io["ff.cps.sampled_next_latents"], drawn.Next, what: "cps sampled");
        TensorAssert.Close(io["ff.cps.sampled_log_prob"], drawn.LogProb, what: "cps sampled log_prob");

        // The exact Gaussian: Flow-Factory's mean square q gives q / (2 std²) ... in float64 from the fixture alone.
        var exact = sampler.Step(io["given.model_output"], io["timestep"], io["sample"], NoiseLevel, next: io["prev_sample"]);
        var std = io["ff.cps.std_dev_t"].to(ScalarType.Float64).flatten();
        var q = -io["ff.cps.log_prob"].to(ScalarType.Float64);
        var expected = -q / (2 * std.pow(2)) - std.log() - 0.5 * Math.Log(2 * Math.PI);
        // Items 0-2 are stochastic; item 3 is the last step (σ_next = 0, std 0): no density.
        TensorAssert.Close(expected[..3].to(ScalarType.Float32), exact.LogProb[..3], what: "cps exact log_prob");
        Assert.False(double.IsFinite(exact.LogProb[3].item<float>()));
        Assert.Equal(0f, exact.Std[3].item<float>());
    }

    [Fact]
    public void NoiseLevelZeroIsEulersStepAndHasNoDensity()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = Scheduler();
        foreach (var name in FlowSamplers.Names)
        {
            var sampler = FlowSamplers.Create(name, scheduler);
            sampler.Schedule(10).Dispose();
            var euler = scheduler.Step(io["model_output"], io["timestep"], io["sample"]);
            var step = sampler.Step(io["model_output"], io["timestep"], io["sample"], 0.0, noise: io["eps"]);
            TensorAssert.Close(euler, step.Mean, atol: 1e-5, what: $"{name} mean at noise level 0");
            TensorAssert.Close(euler, step.Next, atol: 1e-5, what: $"{name} next at noise level 0");
            Assert.Equal(0.0, step.Std.abs().max().item<float>());
            Assert.All(step.LogProb.data<float>().ToArray(), v => Assert.False(float.IsFinite(v)));
        }
        // The ODE ignores the noise level.
        var ode = FlowSamplers.Create("ode", scheduler);
        var odeStep = ode.Step(io["model_output"], io["timestep"], io["sample"], NoiseLevel, noise: io["eps"]);
        TensorAssert.Close(scheduler.Step(io["model_output"], io["timestep"], io["sample"]), odeStep.Next, atol: 1e-5, what: "ode next");
        Assert.True(odeStep.LogProb.isnan().all().item<bool>());
    }

    [Fact]
    public void StochasticStepsPerSdeType()
    {
        using var scheduler = Scheduler();
        Assert.Equal(10, FlowSamplers.Create("flow_sde", scheduler).StochasticSteps(10));
        Assert.Equal(10, FlowSamplers.Create("dance_sde", scheduler).StochasticSteps(10));
        // CPS's last step (to σ = 0) has std 0.
        Assert.Equal(9, FlowSamplers.Create("cps", scheduler).StochasticSteps(10));
        Assert.Equal(4, FlowSamplers.Create("cps", scheduler).StochasticSteps(5));
        Assert.Equal(1, FlowSamplers.Create("flow_sde", scheduler).StochasticSteps(1));
        var cps = Assert.Throws<ConfigException>(() => FlowSamplers.Create("cps", scheduler).StochasticSteps(1));
        Assert.Contains("cps", cps.Message);
        var ode = Assert.Throws<ConfigException>(() => FlowSamplers.Create("ode", scheduler).StochasticSteps(10));
        Assert.Contains("deterministic", ode.Message);
    }

    [Fact]
    public void FactoryKnowsTheNamesAndRefusesOthers()
    {
        using var scheduler = Scheduler();
        Assert.Equal(FlowSdeType.FlowSde, FlowSamplers.Create("flow_sde", scheduler).SdeType);
        Assert.Equal(FlowSdeType.DanceSde, FlowSamplers.Create("dance_sde", scheduler).SdeType);
        Assert.Equal(FlowSdeType.Cps, FlowSamplers.Create("cps", scheduler).SdeType);
        Assert.IsType<FlowOdeSampler>(FlowSamplers.Create("ode", scheduler));
        var e = Assert.Throws<ConfigException>(() => FlowSamplers.Create("Flow-SDE", scheduler));
        Assert.Contains("\"Flow-SDE\"", e.Message);
        Assert.Contains("flow_sde, dance_sde, cps, ode", e.Message);
    }

    [Fact]
    public void TimesOutsideTheScheduleAreRefused()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = Scheduler();
        var sampler = new FlowSdeSampler(scheduler);
        Assert.Throws<InvalidOperationException>(() => sampler.Step(io["model_output"], io["timestep"], io["sample"], NoiseLevel));
        sampler.Schedule(10).Dispose();
        Assert.Throws<ArgumentException>(() => sampler.Step(io["model_output"], io["timestep"] + 0.5f, io["sample"], NoiseLevel));
        Assert.Throws<ArgumentException>(() => sampler.Step(io["model_output"], io["timestep"][..2], io["sample"], NoiseLevel));
        // One time for the whole batch, as Flow-GRPO's pipeline passes t.unsqueeze(0).
        var one = sampler.Step(io["model_output"], io["timestep"][..1], io["sample"], NoiseLevel, noise: io["eps"]);
        TensorAssert.Close(io["prev_sample_mean"][..1], one.Mean[..1], what: "mean with one time for the batch");
    }

    [Fact]
    public void FluxSchedulesWithMuAndFluxPipelineSigmas()
    {
        using var scope = NewDisposeScope();
        var io = SafetensorsFile.Load(TestPaths.Fixture("refenv", "scheduler", "io.safetensors"));
        using var flux = FlowMatchEulerDiscreteScheduler.FromConfigFile(TestPaths.Fixture("refenv", "scheduler", "flux", "scheduler_config.json"));
        Assert.Throws<InvalidOperationException>(() => new FlowSdeSampler(flux).Schedule(10));
        var sampler = FlowSamplers.Create("flow_sde", flux, flux.CalculateShift(1024));
        TensorAssert.Close(io["flux.L1024.n10.timesteps"], sampler.Schedule(10), atol: 0, rtol: 0, what: "flux timesteps");
        TensorAssert.Close(io["flux.L1024.n10.sigmas"], flux.Sigmas, atol: 0, rtol: 0, what: "flux sigmas");
    }

    // d sum(log_prob · w) / d model_output by autograd against central differences, in float64, for each SDE.
    [Theory]
    [InlineData("flow_sde", false)]
    [InlineData("dance_sde", false)]
    [InlineData("cps", false)]
    [InlineData("cps", true)]
    public void LogProbGradientMatchesFiniteDifferences(string name, bool flowFactoryLogProb)
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = Scheduler();
        var sampler = flowFactoryLogProb ? new CpsSampler(scheduler, flowFactoryLogProb: true) : FlowSamplers.Create(name, scheduler);
        sampler.Schedule(10).Dispose();
        // Items at steps 0, 1 and 5 (CPS's last step has no density).
        var time = io["timestep"][..3];
        var sample = io["sample"][..3].to(ScalarType.Float64);
        var output = io["model_output"][..3].to(ScalarType.Float64);
        var next = sampler.Step(output, time, sample, NoiseLevel, noise: io["eps"][..3].to(ScalarType.Float64)).Next;
        var perturbed = (output + 0.05 * io["given.model_output"][..3].to(ScalarType.Float64)).detach();
        var w = tensor(new[] { 0.7, -1.3, 2.1 }, dtype: ScalarType.Float64);
        double Loss(Tensor v)
        {
            using var s = NewDisposeScope();
            using var _ = no_grad();
            return (sampler.Step(v, time, sample, NoiseLevel, next: next).LogProb * w).sum().item<double>();
        }
        var x = perturbed.clone().requires_grad_(true);
        var step = sampler.Step(x, time, sample, NoiseLevel, next: next);
        Assert.Equal(ScalarType.Float64, step.LogProb.dtype);
        (step.LogProb * w).sum().backward();
        var grad = x.grad!;
        const double h = 1e-6;
        foreach (var (b, c, i, j) in new[] { (0L, 0L, 0L, 0L), (0L, 5L, 2L, 3L), (1L, 9L, 4L, 7L), (2L, 15L, 5L, 1L), (2L, 3L, 1L, 6L) })
        {
            var plus = perturbed.clone();
            plus[b, c, i, j] += h;
            var minus = perturbed.clone();
            minus[b, c, i, j] -= h;
            double numeric = (Loss(plus) - Loss(minus)) / (2 * h);
            double analytic = grad[b, c, i, j].item<double>();
            Assert.True(Math.Abs(numeric - analytic) <= 1e-6 * Math.Max(1.0, Math.Abs(analytic)),
                $"{name}: d/d output[{b},{c},{i},{j}] autograd {analytic:R}, finite differences {numeric:R}");
            Assert.NotEqual(0.0, analytic);
        }
    }
}
