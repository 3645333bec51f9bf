using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Schedulers;

/// <summary>
/// <see cref="FlowMatchEulerDiscreteScheduler"/> against diffusers 0.31 (refenv/scheduler): the SD3 (shift 3) and FLUX
/// (dynamic shifting) configs, the training tables, <c>set_timesteps</c> for 4, 10 and 28 steps (FLUX at four image
/// sizes, with <c>calculate_shift</c>'s mu and FluxPipeline's sigmas), three Euler steps each and <c>scale_noise</c>.
/// </summary>
public sealed class FlowMatchEulerDiscreteSchedulerTests
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "scheduler");
    private static readonly int[] StepCounts = [4, 10, 28];
    private static readonly long[] SeqLens = [4096, 1024, 48, 4080];

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static JsonObject Meta() => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "io.json")))!;

    private static FlowMatchEulerDiscreteScheduler Sd3() => FlowMatchEulerDiscreteScheduler.FromConfigFile(Path.Combine(Folder, "sd3", "scheduler_config.json"));

    private static FlowMatchEulerDiscreteScheduler Flux() => FlowMatchEulerDiscreteScheduler.FromConfigFile(Path.Combine(Folder, "flux", "scheduler_config.json"));

    // The tables are computed as diffusers computes them (float32 for the training table, numpy's float64 then
    // float32 for the inference spacing), so they are equal to the bit.
    private static void AssertTable(Tensor expected, Tensor actual, string what) => TensorAssert.Close(expected, actual, atol: 0, rtol: 0, what: what);

    [Fact]
    public void ConfigsReadAsDiffusersWroteThem()
    {
        var sd3 = FlowMatchEulerDiscreteSchedulerConfig.Load(Path.Combine(Folder, "sd3", "scheduler_config.json"));
        var flux = FlowMatchEulerDiscreteSchedulerConfig.Load(Path.Combine(Folder, "flux", "scheduler_config.json"));
        Assert.Equal(FlowMatchEulerDiscreteSchedulerConfig.StableDiffusion3(), sd3);
        Assert.Equal(FlowMatchEulerDiscreteSchedulerConfig.Flux(), flux);
        var meta = Meta();
        foreach (var (config, key) in new[] { (sd3, "sd3_config"), (flux, "flux_config") })
        {
            var expected = (JsonObject)meta[key]!;
            Assert.Equal(expected["num_train_timesteps"]!.GetValue<int>(), config.NumTrainTimesteps);
            Assert.Equal(expected["shift"]!.GetValue<double>(), config.Shift);
            Assert.Equal(expected["use_dynamic_shifting"]!.GetValue<bool>(), config.UseDynamicShifting);
            Assert.Equal(expected["base_shift"]!.GetValue<double>(), config.BaseShift);
            Assert.Equal(expected["max_shift"]!.GetValue<double>(), config.MaxShift);
            Assert.Equal(expected["base_image_seq_len"]!.GetValue<int>(), config.BaseImageSeqLen);
            Assert.Equal(expected["max_image_seq_len"]!.GetValue<int>(), config.MaxImageSeqLen);
            // What it writes reads back the same.
            var written = new JsonConfig((JsonObject)JsonNode.Parse(config.ToJson())!, "written");
            Assert.Equal(config, FlowMatchEulerDiscreteSchedulerConfig.FromJson(written));
        }
    }

    [Fact]
    public void SchedulerConfigOfTheRealSd3FolderTakesDiffusersDefaults()
    {
        // stabilityai/stable-diffusion-3-medium-diffusers' scheduler_config.json lists only these.
        var c = Parse("""{"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.29.0.dev0", "num_train_timesteps": 1000, "shift": 3.0}""");
        Assert.Equal(FlowMatchEulerDiscreteSchedulerConfig.StableDiffusion3(), c);
        // Keys of later diffusers versions at their neutral values change nothing.
        var later = Parse("""{"shift": 3.0, "invert_sigmas": false, "shift_terminal": null, "use_karras_sigmas": false, "use_exponential_sigmas": false, "use_beta_sigmas": false, "time_shift_type": "exponential", "stochastic_sampling": false}""");
        Assert.Equal(FlowMatchEulerDiscreteSchedulerConfig.StableDiffusion3(), later);
    }

    [Theory]
    [InlineData("""{"shift": 3.0, "prediction_type": "epsilon"}""", "prediction_type")]
    [InlineData("""{"shift": "3"}""", "shift")]
    [InlineData("""{"use_dynamic_shifting": 1}""", "use_dynamic_shifting")]
    [InlineData("""{"num_train_timesteps": 1000.5}""", "num_train_timesteps")]
    [InlineData("""{"shift_terminal": 0.02}""", "shift_terminal")]
    [InlineData("""{"use_karras_sigmas": true}""", "use_karras_sigmas")]
    [InlineData("""{"_class_name": "DDIMScheduler"}""", "_class_name")]
    [InlineData("""{"shift": 0}""", "shift")]
    [InlineData("""{"base_image_seq_len": 4096}""", "max_image_seq_len")]
    public void BadConfigsNameTheFileAndTheKey(string json, string key)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(json));
        Assert.Contains("test.json", e.Message);
        Assert.Contains($"'{key}'", e.Message);
    }

    private static FlowMatchEulerDiscreteSchedulerConfig Parse(string json) =>
        FlowMatchEulerDiscreteSchedulerConfig.FromJson(new JsonConfig((JsonObject)JsonNode.Parse(json)!, "test.json"));

    [Fact]
    public void TrainingTablesMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var sd3 = Sd3();
        using var flux = Flux();
        AssertTable(io["sd3.init_sigmas"], tensor(sd3.InitSigmas.ToArray()), "sd3.init_sigmas");
        AssertTable(io["sd3.init_timesteps"], tensor(sd3.InitTimesteps.ToArray()), "sd3.init_timesteps");
        AssertTable(io["sd3.init_sigmas"], sd3.Sigmas, "sd3.sigmas before set_timesteps");
        AssertTable(io["flux.init_sigmas"], tensor(flux.InitSigmas.ToArray()), "flux.init_sigmas");
        var meta = Meta();
        Assert.Equal(meta["sd3.sigma_min"]!.GetValue<double>(), sd3.SigmaMin, 12);
        Assert.Equal(meta["sd3.sigma_max"]!.GetValue<double>(), sd3.SigmaMax, 12);
    }

    [Fact]
    public void Sd3TimestepsAreTheShiftedExtremesShiftedAgain()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var sd3 = Sd3();
        foreach (int n in StepCounts)
        {
            sd3.SetTimesteps(n);
            Assert.Equal(n, sd3.NumInferenceSteps);
            AssertTable(io[$"sd3.n{n}.timesteps"], sd3.Timesteps, $"sd3.n{n}.timesteps");
            AssertTable(io[$"sd3.n{n}.sigmas"], sd3.Sigmas, $"sd3.n{n}.sigmas");
            Assert.Equal(0f, sd3.SigmaValues[^1]);
        }
        sd3.SetTimesteps(10);
        // The double shift: spacing the plain sigmas would end at 2.9940 (sigma_min * 1000).
        Assert.Equal(8.9286, sd3.TimestepValues[^1], 4);
    }

    [Fact]
    public void FluxTimestepsShiftFluxPipelineSigmasByMu()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var mus = (JsonObject)Meta()["flux.mu"]!;
        using var flux = Flux();
        foreach (long len in SeqLens)
        {
            double mu = flux.CalculateShift(len);
            Assert.Equal(mus[len.ToString()]!.GetValue<double>(), mu, 12);
            Assert.Equal(mu, FlowMatchEulerDiscreteScheduler.CalculateShift(len, 256, 4096, 0.5, 1.15));
            foreach (int n in StepCounts)
            {
                flux.SetTimesteps(n, mu, FlowMatchEulerDiscreteScheduler.Linspace(1.0, 1.0 / n, n));
                AssertTable(io[$"flux.L{len}.n{n}.timesteps"], flux.Timesteps, $"flux.L{len}.n{n}.timesteps");
                AssertTable(io[$"flux.L{len}.n{n}.sigmas"], flux.Sigmas, $"flux.L{len}.n{n}.sigmas");
            }
        }
        Assert.Throws<ArgumentException>(() => flux.SetTimesteps(10));
    }

    [Theory]
    [InlineData("sd3.n10")]
    [InlineData("flux.L48.n10")]
    public void ThreeEulerStepsMatchDiffusers(string tag)
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var scheduler = tag.StartsWith("sd3") ? Sd3() : Flux();
        if (tag.StartsWith("sd3")) scheduler.SetTimesteps(10);
        else scheduler.SetTimesteps(10, scheduler.CalculateShift(48), FlowMatchEulerDiscreteScheduler.Linspace(1.0, 0.1, 10));
        var sample = io[$"{tag}.step.sample0"];
        for (int i = 0; i < 3; i++)
        {
            var t = io[$"{tag}.step.timestep{i}"];
            Assert.Equal(scheduler.TimestepValues[i], t.item<float>());
            var prev = scheduler.Step(io[$"{tag}.step.model_output{i}"], t, sample);
            TensorAssert.Close(io[$"{tag}.step.prev_sample{i}"], prev, what: $"{tag} prev_sample{i}");
            sample = io[$"{tag}.step.prev_sample{i}"];
        }
    }

    [Fact]
    public void ScaleNoiseMixesNoiseAndSampleBySigma()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        using var sd3 = Sd3();
        sd3.SetTimesteps(10);
        var output = sd3.ScaleNoise(io["sd3.n10.scale_noise.sample"], io["sd3.n10.scale_noise.timestep"], io["sd3.n10.scale_noise.noise"]);
        TensorAssert.Close(io["sd3.n10.scale_noise.out"], output, what: "scale_noise");
    }

    [Fact]
    public void IndexForTimestepIsExactAndTakesTheSecondOfRepeats()
    {
        using var sd3 = Sd3();
        sd3.SetTimesteps(10);
        for (int i = 0; i < 10; i++) Assert.Equal(i, sd3.IndexForTimestep(sd3.TimestepValues[i]));
        var e = Assert.Throws<ArgumentException>(() => sd3.IndexForTimestep(sd3.TimestepValues[3] + 0.001f));
        Assert.Contains("not one of", e.Message);
        // Repeated sigmas (diffusers' guard for a schedule entered mid-way): the second one.
        sd3.SetTimesteps(3, sigmas: [0.5, 0.5, 0.25]);
        Assert.Equal(1, sd3.IndexForTimestep(sd3.TimestepValues[0]));
        Assert.Equal(2, sd3.IndexForTimestep(sd3.TimestepValues[2]));
    }

    [Fact]
    public void LinspaceIsNumpys()
    {
        Assert.Equal([1.0], FlowMatchEulerDiscreteScheduler.Linspace(1.0, 0.25, 1));
        var y = FlowMatchEulerDiscreteScheduler.Linspace(1.0, 0.1, 10);
        Assert.Equal(10, y.Length);
        Assert.Equal(0.1, y[^1]);
        Assert.Equal(3 * ((0.1 - 1.0) / 9) + 1.0, y[3]);
    }
}
