using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Schedulers;

/// <summary>
/// diffusers' own DDIM scheduler tests (tests/schedulers/test_scheduler_ddim.py), ported: the same dummy sample,
/// dummy model, configs and loops, and diffusers' asserted figures and tolerances (1e-2 on the sum, 1e-3 on the
/// mean of |x|) as facts. Plain sampling steps as diffusers (<see cref="DdimFinalStep.Diffusers"/>).
/// </summary>
public sealed class DiffusersDdimSchedulerTests
{
    // diffusers' get_scheduler_config(): linear betas 1e-4..0.02 over 1000 steps, clip_sample true; the rest default.
    private static DdimSchedulerConfig Config() => new()
    {
        NumTrainTimesteps = 1000, BetaStart = 0.0001, BetaEnd = 0.02, BetaSchedule = "linear", ClipSample = true,
    };

    // SchedulerCommonTest.dummy_sample_deter: arange(4*3*8*8) reshaped (3, 8, 8, 4), / n, permuted to (4, 3, 8, 8).
    // dummy_noise_deter is the same with the arange flipped.
    private static Tensor DummyDeterministic(bool flip)
    {
        const int n = 4 * 3 * 8 * 8;
        var values = arange(n, dtype: ScalarType.Int64);
        if (flip) values = values.flip(-1);
        return (values.reshape(3, 8, 8, 4) / n).permute(3, 0, 1, 2);
    }

    // SchedulerCommonTest.dummy_model: sample * t / (t + 1), t cast to the sample's dtype.
    private static Tensor DummyModel(Tensor sample, long t)
    {
        var tt = tensor((float)t);
        return sample * tt / (tt + 1);
    }

    private static Tensor Loop(DdimScheduler scheduler, Tensor sample, IEnumerable<long> timesteps,
        DdimFinalStep finalStep = DdimFinalStep.Diffusers)
    {
        foreach (var t in timesteps)
        {
            var residual = DummyModel(sample, t);
            sample = scheduler.Step(residual, tensor(t), sample, eta: 0.0, finalStep: finalStep).PrevSample;
        }
        return sample;
    }

    // DDIMSchedulerTest.full_loop: 10 steps, eta 0, from the deterministic dummy sample.
    private static Tensor FullLoop(DdimSchedulerConfig config, DdimFinalStep finalStep = DdimFinalStep.Diffusers)
    {
        using var scheduler = new DdimScheduler(config);
        scheduler.SetTimesteps(10);
        return Loop(scheduler, DummyDeterministic(flip: false), scheduler.Timesteps, finalStep);
    }

    private static void AssertSumAndMean(Tensor result, double sum, double mean)
    {
        double actualSum = result.abs().sum().item<float>(), actualMean = result.abs().mean().item<float>();
        Assert.True(Math.Abs(actualSum - sum) < 1e-2, $"sum of |x|: expected {sum} (diffusers), got {actualSum}");
        Assert.True(Math.Abs(actualMean - mean) < 1e-3, $"mean of |x|: expected {mean} (diffusers), got {actualMean}");
    }

    [Fact]
    public void FullLoopNoNoise()
    {
        using var scope = NewDisposeScope();
        AssertSumAndMean(FullLoop(Config()), 172.0067, 0.223967);
    }

    [Fact]
    public void FullLoopWithVPrediction()
    {
        using var scope = NewDisposeScope();
        AssertSumAndMean(FullLoop(Config() with { PredictionType = "v_prediction" }), 52.5302, 0.0684);
    }

    [Fact]
    public void FullLoopWithSetAlphaToOne()
    {
        // beta_start 0.01 makes the first alpha 0.99, so final_alpha_cumprod (1 vs alphas_cumprod[0]) shows.
        using var scope = NewDisposeScope();
        AssertSumAndMean(FullLoop(Config() with { SetAlphaToOne = true, BetaStart = 0.01 }), 149.8295, 0.1951);
    }

    [Fact]
    public void FullLoopWithNoSetAlphaToOne()
    {
        using var scope = NewDisposeScope();
        AssertSumAndMean(FullLoop(Config() with { SetAlphaToOne = false, BetaStart = 0.01 }), 149.0784, 0.1941);
    }

    [Fact]
    public void DdpoFinalStepUsesAlphasCumprod0WhateverSetAlphaToOneSays()
    {
        // ddpo-pytorch clamps the previous timestep at 0: with set_alpha_to_one its last step is diffusers'
        // set_alpha_to_one = false step, so it gives the latter's figures.
        using var scope = NewDisposeScope();
        AssertSumAndMean(FullLoop(Config() with { SetAlphaToOne = true, BetaStart = 0.01 }, DdimFinalStep.Ddpo), 149.0784, 0.1941);
    }

    [Fact]
    public void FullLoopWithNoise()
    {
        using var scope = NewDisposeScope();
        using var scheduler = new DdimScheduler(Config());
        scheduler.SetTimesteps(10);
        const int tStart = 8; // scheduler.order is 1 for DDIM
        var timesteps = scheduler.Timesteps[tStart..];
        var sample = scheduler.AddNoise(DummyDeterministic(flip: false), DummyDeterministic(flip: true), tensor(timesteps[..1]));
        AssertSumAndMean(Loop(scheduler, sample, timesteps), 354.5418, 0.4616);
    }

    [Fact]
    public void StepsOffset()
    {
        using var scheduler = new DdimScheduler(Config() with { StepsOffset = 1 });
        scheduler.SetTimesteps(5);
        Assert.Equal([801L, 601, 401, 201, 1], scheduler.Timesteps);
    }

    [Fact]
    public void NumInferenceStepsZeroRaises()
    {
        using var scheduler = new DdimScheduler(Config());
        var e = Assert.Throws<ArgumentException>(() => scheduler.SetTimesteps(0));
        Assert.Contains("inference steps", e.Message);
        Assert.Contains("got 0", e.Message);
        Assert.Throws<ArgumentException>(() => scheduler.SetTimesteps(1001));
    }

    [Fact]
    public void Variance()
    {
        using var scheduler = new DdimScheduler(Config());
        Assert.True(Math.Abs(scheduler.GetVariance(0, 0) - 0.0) < 1e-5);
        Assert.True(Math.Abs(scheduler.GetVariance(420, 400) - 0.14771) < 1e-5);
        Assert.True(Math.Abs(scheduler.GetVariance(980, 960) - 0.32460) < 1e-5);
        Assert.True(Math.Abs(scheduler.GetVariance(487, 486) - 0.00979) < 1e-5);
        Assert.True(Math.Abs(scheduler.GetVariance(999, 998) - 0.02) < 1e-5);
    }

    [Theory]
    [InlineData("leading", new long[] { 900, 800, 700, 600, 500, 400, 300, 200, 100, 0 })]
    [InlineData("trailing", new long[] { 999, 899, 799, 699, 599, 499, 399, 299, 199, 99 })]
    [InlineData("linspace", new long[] { 999, 888, 777, 666, 555, 444, 333, 222, 111, 0 })]
    public void TimestepSpacing(string spacing, long[] expected)
    {
        // diffusers' set_timesteps: leading (arange(steps) * (n // steps)).round()[::-1] + steps_offset;
        // trailing round(arange(n, 0, -n / steps)) - 1; linspace linspace(0, n - 1, steps).round()[::-1].
        using var scheduler = new DdimScheduler(Config() with { TimestepSpacing = spacing });
        scheduler.SetTimesteps(10);
        Assert.Equal(expected, scheduler.Timesteps);
    }

    [Fact]
    public void TrailingSpacingWithANonIntegerRatio()
    {
        // round(arange(1000, 0, -1000/3)) - 1 = [999, 666, 332] (numpy rounds half to even: 666.67 -> 667, 333.33 -> 333).
        using var scheduler = new DdimScheduler(Config() with { TimestepSpacing = "trailing" });
        scheduler.SetTimesteps(3);
        Assert.Equal([999L, 666, 332], scheduler.Timesteps);
    }

    public static TheoryData<string> ConfigVariations() =>
    [
        // test_timesteps, test_steps_offset, test_betas, test_schedules, test_prediction_type, test_clip_sample,
        // test_timestep_spacing of diffusers (check_over_configs: save, reload, identical step).
        "num_train_timesteps=100", "num_train_timesteps=500", "num_train_timesteps=1000",
        "steps_offset=0", "steps_offset=1",
        "betas=0.0001,0.002", "betas=0.001,0.02", "betas=0.01,0.2", "betas=0.1,2",
        "beta_schedule=linear", "beta_schedule=squaredcos_cap_v2", "beta_schedule=scaled_linear",
        "prediction_type=epsilon", "prediction_type=v_prediction", "prediction_type=sample",
        "clip_sample=true", "clip_sample=false", "clip_sample_range=2",
        "timestep_spacing=trailing", "timestep_spacing=leading", "timestep_spacing=linspace",
        "set_alpha_to_one=false",
    ];

    private static DdimSchedulerConfig Vary(string variation)
    {
        var (key, value) = (variation.Split('=')[0], variation.Split('=')[1]);
        var c = Config();
        return key switch
        {
            "num_train_timesteps" => c with { NumTrainTimesteps = int.Parse(value) },
            "steps_offset" => c with { StepsOffset = int.Parse(value) },
            "betas" => c with { BetaStart = double.Parse(value.Split(',')[0]), BetaEnd = double.Parse(value.Split(',')[1]) },
            "beta_schedule" => c with { BetaSchedule = value },
            "prediction_type" => c with { PredictionType = value },
            "clip_sample" => c with { ClipSample = bool.Parse(value) },
            "clip_sample_range" => c with { ClipSampleRange = double.Parse(value) },
            "timestep_spacing" => c with { TimestepSpacing = value },
            "set_alpha_to_one" => c with { SetAlphaToOne = bool.Parse(value) },
            _ => throw new ArgumentException(variation),
        };
    }

    [Theory]
    [MemberData(nameof(ConfigVariations))]
    public void ConfigSavedAndReloadedStepsIdentically(string variation)
    {
        // diffusers' check_over_configs: a step at timestep 0 with eta 0 and 50 inference steps gives the same
        // output after save_config / from_pretrained (here also: the same timesteps).
        using var scope = NewDisposeScope();
        var config = Vary(variation);
        var dir = TestPaths.NewTempDir();
        var path = Path.Combine(dir, "scheduler_config.json");
        File.WriteAllText(path, config.ToJson());
        var reloaded = DdimSchedulerConfig.Load(path);
        Directory.Delete(dir, true);
        Assert.Equal(config, reloaded);
        using var a = new DdimScheduler(config);
        using var b = new DdimScheduler(reloaded);
        int steps = Math.Min(50, config.NumTrainTimesteps);
        a.SetTimesteps(steps);
        b.SetTimesteps(steps);
        Assert.Equal(a.Timesteps, b.Timesteps);
        var sample = rand(4, 3, 8, 8, generator: new TorchSharp.torch.Generator(0));
        var residual = 0.1 * sample;
        var x = a.Step(residual, tensor(0L), sample, 0.0).PrevSample;
        var y = b.Step(residual, tensor(0L), sample, 0.0).PrevSample;
        Assert.True(x.isfinite().all().item<bool>(), $"{variation}: non-finite step output at t = 0");
        Assert.True((x - y).abs().sum().item<float>() < 1e-5, $"{variation}: outputs differ at t = 0");
    }

    [Theory]
    [InlineData("thresholding", "true")]
    [InlineData("rescale_betas_zero_snr", "true")]
    [InlineData("trained_betas", "[0.1, 0.2]")]
    [InlineData("timestep_spacing", "\"karras\"")]
    [InlineData("prediction_type", "\"flow\"")]
    [InlineData("beta_schedule", "\"sigmoid\"")]
    public void UnsupportedOptionsAreClearErrors(string field, string json)
    {
        // diffusers' DDIMScheduler can have these; we do not implement them, so loading them must fail, naming the field.
        var dir = TestPaths.NewTempDir();
        var path = Path.Combine(dir, "scheduler_config.json");
        File.WriteAllText(path, $$"""{"_class_name": "DDIMScheduler", "{{field}}": {{json}}}""");
        var e = Assert.Throws<ConfigException>(() => DdimSchedulerConfig.Load(path));
        Assert.Contains(field, e.Message);
        Assert.Contains(path, e.Message);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void DisabledUnsupportedOptionsAreAccepted()
    {
        // thresholding = false / rescale_betas_zero_snr = false (and their unused parameters) are what diffusers writes.
        var dir = TestPaths.NewTempDir();
        var path = Path.Combine(dir, "scheduler_config.json");
        File.WriteAllText(path, """
            {"_class_name": "DDIMScheduler", "thresholding": false, "rescale_betas_zero_snr": false,
             "dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "trained_betas": null}
            """);
        Assert.Equal(new DdimSchedulerConfig(), DdimSchedulerConfig.Load(path));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void OnlyDiffusersLastStepWithSetAlphaToOneIsDeterministic()
    {
        using var scope = NewDisposeScope();
        // steps_offset 1 (as Stable Diffusion): the last timestep is 1, its previous one -99.
        using var one = new DdimScheduler(Config() with { SetAlphaToOne = true, StepsOffset = 1 });
        one.SetTimesteps(10);
        Assert.Equal(9, one.StochasticStepCount(DdimFinalStep.Diffusers));
        Assert.Equal(10, one.StochasticStepCount(DdimFinalStep.Ddpo));
        using var zero = new DdimScheduler(Config() with { SetAlphaToOne = false, StepsOffset = 1 });
        zero.SetTimesteps(10);
        Assert.Equal(10, zero.StochasticStepCount(DdimFinalStep.Diffusers));
        Assert.Equal(10, zero.StochasticStepCount(DdimFinalStep.Ddpo));
        // steps_offset 0: the last timestep is 0, and stepping from alphas_cumprod[0] to alphas_cumprod[0]
        // (ddpo-pytorch's clamp, or diffusers without set_alpha_to_one) has zero variance too.
        using var offset0 = new DdimScheduler(Config() with { SetAlphaToOne = false });
        offset0.SetTimesteps(10);
        Assert.Equal(9, offset0.StochasticStepCount(DdimFinalStep.Ddpo));
        Assert.Equal(9, offset0.StochasticStepCount(DdimFinalStep.Diffusers));

        // The deterministic step: std 0 and x_{t-1} = mean whatever the noise; ddpo's step is stochastic there.
        var x = randn(2, 3, 8, 8, generator: new TorchSharp.torch.Generator(1));
        var eps = randn(2, 3, 8, 8, generator: new TorchSharp.torch.Generator(2));
        var last = tensor(one.Timesteps[^1]);
        var diffusers = one.Step(eps, last, x, 1.0, generator: new TorchSharp.torch.Generator(3));
        Assert.Equal(0f, diffusers.Std.abs().max().item<float>());
        TensorAssert.Close(diffusers.Mean, diffusers.PrevSample, atol: 0, rtol: 0, what: "deterministic last step");
        var ddpo = one.Step(eps, last, x, 1.0, generator: new TorchSharp.torch.Generator(3), finalStep: DdimFinalStep.Ddpo);
        Assert.True((ddpo.Std > 0).all().item<bool>());
        Assert.True(ddpo.LogProb.isfinite().all().item<bool>());
    }
}
