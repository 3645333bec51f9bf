using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Runtime;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Config;

public sealed class DdpoConfigTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("ddpo-config");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void DefaultsEqualDdpoPytorchBase()
    {
        var c = DdpoConfig.Load(null, null, null);
        Assert.Equal("", c.RunName);
        Assert.Equal(42, c.Seed);
        Assert.Equal(100, c.NumEpochs);
        Assert.Equal(20, c.SaveFreq);
        Assert.Equal(5, c.NumCheckpointLimit);
        Assert.True(c.UseLora);
        Assert.Equal(TrainingAlgorithm.DdpoIs, c.Algorithm);
        Assert.Equal("imagenet_animals", c.PromptFn);
        Assert.Empty(c.PromptFnKwargs);
        Assert.Equal("jpeg_compressibility", c.RewardFn);
        Assert.Empty(c.Rewards);
        // base.py mixed_precision = "fp16" on CUDA; "auto" keeps that there and is fp32 on the CPU
        // (the old default "fp16" was silently replaced by fp32 on the CPU).
        Assert.Equal("auto", c.Pretrained.Dtype);
        Assert.Equal(ScalarType.Float16, TorchRuntime.ResolveDType(c.Pretrained.Dtype, new Device("cuda")));
        Assert.Equal(ScalarType.Float32, TorchRuntime.ResolveDType(c.Pretrained.Dtype, CPU));
        Assert.Equal(ScalarType.Float16, TorchRuntime.ResolveDType("fp16", CPU));
        Assert.Equal("auto", c.Train.LossScaling);
        Assert.Equal(65536, c.Train.LossScaleInit);
        Assert.Equal(2000, c.Train.LossScaleGrowthInterval);

        Assert.Equal(50, c.Sample.NumSteps);
        Assert.Equal(1.0, c.Sample.Eta);
        Assert.Equal(5.0, c.Sample.GuidanceScale);
        Assert.Equal(1, c.Sample.BatchSize);
        Assert.Equal(2, c.Sample.NumBatchesPerEpoch);
        Assert.Equal(0, c.Sample.SamplesPerEpoch); // no total stated: the per-process keys are used as set
        Assert.Equal(0, c.Train.TotalBatchSize);
        Assert.Equal(1, c.WorldSize);
        Assert.Equal(Ddpo.Schedulers.DdimFinalStep.Ddpo, c.Sample.FinalStep); // ddim_step_with_logprob clamps at t = 0
        Assert.Equal(Ddpo.Models.Lora.LoraInit.Gaussian, c.Lora.Init); // diffusers 0.17 LoRALinearLayer

        Assert.Equal(1, c.Train.BatchSize);
        Assert.Equal(3e-4, c.Train.LearningRate);
        Assert.Equal(0.9, c.Train.AdamBeta1);
        Assert.Equal(0.999, c.Train.AdamBeta2);
        Assert.Equal(1e-4, c.Train.AdamWeightDecay);
        Assert.Equal(1e-8, c.Train.AdamEpsilon);
        Assert.Equal(1, c.Train.GradientAccumulationSteps);
        Assert.Equal(1.0, c.Train.MaxGradNorm);
        Assert.Equal(1, c.Train.NumInnerEpochs);
        Assert.True(c.Train.Cfg);
        Assert.Equal(5.0, c.Train.AdvClipMax);
        Assert.Equal(1e-4, c.Train.ClipRange);
        Assert.Equal(1.0, c.Train.TimestepFraction);

        Assert.True(c.PerPromptStatTracking.Enabled);
        Assert.Equal(16, c.PerPromptStatTracking.BufferSize);
        Assert.Equal(16, c.PerPromptStatTracking.MinCount);
        Assert.Equal(50, c.NumTrainTimesteps);
        Assert.Null(c.OriginOf("seed"));
    }

    // Until the presets stated totals, they kept dgx.py's per-GPU sizes, so one device drew 1/8 of the paper's
    // samples (issue 13, item 5): on one device the epoch is now dgx.py's 8 GPUs' worth.
    [Fact]
    public void CompressibilityPresetStatesDgxTotals()
    {
        var c = DdpoConfig.Load(null, "compressibility", null);
        Assert.Equal(100, c.NumEpochs);
        Assert.True(c.UseLora);
        Assert.Equal(256, c.Sample.SamplesPerEpoch);
        Assert.Equal(64, c.Train.TotalBatchSize);
        Assert.Equal(8, c.Sample.BatchSize);
        Assert.Equal(32, c.Sample.NumBatchesPerEpoch);
        Assert.Equal(4, c.Train.BatchSize);
        Assert.Equal(16, c.Train.GradientAccumulationSteps);
        Assert.Equal(3e-4, c.Train.LearningRate);
        Assert.Equal(1e-4, c.Train.ClipRange);
        Assert.Equal(5.0, c.Train.AdvClipMax);
        Assert.Equal(5.0, c.Sample.GuidanceScale);
        Assert.Equal(50, c.Sample.NumSteps);
        Assert.Equal(1.0, c.Sample.Eta);
        Assert.Equal(1.0, c.Train.TimestepFraction);
        Assert.Equal(1, c.Train.NumInnerEpochs);
        Assert.Equal("imagenet_animals", c.PromptFn);
        Assert.Equal("jpeg_compressibility", c.RewardFn);
        Assert.Equal((16, 16), (c.PerPromptStatTracking.BufferSize, c.PerPromptStatTracking.MinCount));
        Assert.Equal("preset 'compressibility'", c.OriginOf("train.batch_size"));

        Assert.Equal("jpeg_incompressibility", DdpoConfig.Load(null, "incompressibility", null).RewardFn);
    }

    [Fact]
    public void AestheticAndAlignmentPresets()
    {
        var a = DdpoConfig.Load(null, "aesthetic", null);
        Assert.Equal(200, a.NumEpochs);
        Assert.Equal("aesthetic_score", a.RewardFn);
        Assert.Equal("simple_animals", a.PromptFn);
        Assert.Equal((256, 128), (a.Sample.SamplesPerEpoch, a.Train.TotalBatchSize));
        Assert.Equal(32, a.Train.GradientAccumulationSteps); // 128 per step = 32 x 4 on one device
        Assert.Equal((32, 16), (a.PerPromptStatTracking.BufferSize, a.PerPromptStatTracking.MinCount));
        Assert.Equal(8, a.Sample.BatchSize);

        var p = DdpoConfig.Load(null, "prompt_image_alignment", null);
        Assert.Equal(200, p.NumEpochs);
        Assert.Equal((288, 144), (p.Sample.SamplesPerEpoch, p.Train.TotalBatchSize));
        Assert.Equal((8, 36), (p.Sample.BatchSize, p.Sample.NumBatchesPerEpoch));
        Assert.Equal((4, 36), (p.Train.BatchSize, p.Train.GradientAccumulationSteps));
        Assert.Equal("nouns_activities", p.PromptFn);
        Assert.Equal("simple_animals.txt", p.PromptFnKwargs["nouns_file"]);
        Assert.Equal("activities.txt", p.PromptFnKwargs["activities_file"]);
        Assert.Equal((32, 16), (p.PerPromptStatTracking.BufferSize, p.PerPromptStatTracking.MinCount));
    }

    [Fact]
    public void UnknownPresetIsAnError()
    {
        var e = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, "nope", null));
        Assert.Contains("nope", e.Message);
        Assert.Contains("compressibility", e.Message);
    }

    [Fact]
    public void LayersApplyInOrderPresetFileSet()
    {
        var file = Write("run.toml", """
            seed = 7
            [train]
            learning_rate = 1e-4
            clip_range = 2e-4
            [sample]
            batch_size = 16
            """);
        var c = DdpoConfig.Load(file, "aesthetic", ["train.learning_rate=2e-5", "prompt_fn=simple_animals_train", "train.cfg=false"]);
        Assert.Equal(7, c.Seed);
        Assert.Equal(2e-5, c.Train.LearningRate);
        Assert.Equal(2e-4, c.Train.ClipRange);
        Assert.Equal(16, c.Sample.BatchSize);
        Assert.Equal(4, c.Train.BatchSize);        // from the preset
        Assert.Equal(200, c.NumEpochs);            // from the preset
        Assert.False(c.Train.Cfg);
        Assert.Equal("simple_animals_train", c.PromptFn); // bare word read as a string
        Assert.Equal(file, c.OriginOf("train.clip_range"));
        Assert.Equal("--set train.learning_rate", c.OriginOf("train.learning_rate"));
        Assert.Equal("preset 'aesthetic'", c.OriginOf("num_epochs"));
    }

    [Fact]
    public void JsonFilesAreAccepted()
    {
        var file = Write("run.json", """{ "seed": 3, "train": { "learning_rate": 0.001, "batch_size": 1 }, "prompt_fn_kwargs": {} }""");
        var c = DdpoConfig.Load(file, null, null);
        Assert.Equal(3, c.Seed);
        Assert.Equal(0.001, c.Train.LearningRate);
    }

    [Fact]
    public void UnknownKeysNameTheKeyAndFile()
    {
        var file = Write("bad.toml", "[train]\nlearning_rte = 1e-4\n");
        var e = Assert.Throws<ConfigException>(() => DdpoConfig.Load(file, null, null));
        Assert.Contains("train.learning_rte", e.Message);
        Assert.Contains(file, e.Message);
        Assert.Contains("learning_rate", e.Message); // lists the known keys

        var top = Assert.Throws<ConfigException>(() => DdpoConfig.Load(Write("top.toml", "epochs = 3\n"), null, null));
        Assert.Contains("'epochs'", top.Message);

        var set = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["sample.steps=3"]));
        Assert.Contains("sample.steps", set.Message);
        Assert.Contains("--set", set.Message);
    }

    [Theory]
    [InlineData("train.learning_rate = -1e-4", "train.learning_rate")]
    [InlineData("train.learning_rate = 0.0", "train.learning_rate")]
    [InlineData("sample.eta = -0.5", "sample.eta")]
    [InlineData("train.clip_range = 0.0", "train.clip_range")]
    [InlineData("train.clip_range = -1.0", "train.clip_range")]
    [InlineData("train.timestep_fraction = 0.0", "train.timestep_fraction")]
    [InlineData("train.timestep_fraction = 1.5", "train.timestep_fraction")]
    [InlineData("sample.batch_size = 0", "sample.batch_size")]
    [InlineData("train.batch_size = 0", "train.batch_size")]
    [InlineData("sample.num_batches_per_epoch = 0", "sample.num_batches_per_epoch")]
    [InlineData("algorithm = \"ppo\"", "algorithm")]
    [InlineData("device = \"tpu\"", "device")]
    [InlineData("pretrained.dtype = \"fp8\"", "pretrained.dtype")]
    [InlineData("train.loss_scaling = \"static\"", "train.loss_scaling")]
    [InlineData("train.loss_scale_init = 0.0", "train.loss_scale_init")]
    [InlineData("train.loss_scale_init = 1e40", "train.loss_scale_init")]
    [InlineData("train.loss_scale_growth_interval = 0", "train.loss_scale_growth_interval")]
    [InlineData("train.max_skipped_steps = 0", "train.max_skipped_steps")]
    [InlineData("train.max_skipped_steps = 1.5", "train.max_skipped_steps")]
    [InlineData("prompt_fn = \"no_such_prompts\"", "prompt_fn")]
    [InlineData("train.adam_beta2 = 1.0", "train.adam_beta2")]
    [InlineData("rwr.percentile = 101.0", "rwr.percentile")]
    [InlineData("sample.num_steps = \"fifty\"", "sample.num_steps")]
    [InlineData("sample.num_steps = 2.5", "sample.num_steps")]
    [InlineData("train.cfg = 1", "train.cfg")]
    [InlineData("sample.final_step = \"last\"", "sample.final_step")]
    [InlineData("sample.final_step = 1", "sample.final_step")]
    [InlineData("lora.init = \"peft\"", "lora.init")]
    [InlineData("[lora]\ninit = \"normal\"", "lora.init")]
    public void OutOfRangeOrWrongTypeNamesKeyAndFile(string line, string key)
    {
        var file = Write("range.toml", line + "\n");
        var e = Assert.Throws<ConfigException>(() => DdpoConfig.Load(file, null, null));
        Assert.Contains(key, e.Message);
        Assert.Contains(file, e.Message);
    }

    [Fact]
    public void FinalStepAndLoraInitNamesRoundTrip()
    {
        var c = DdpoConfig.Load(null, null, ["sample.final_step=\"diffusers\"", "lora.init=\"kaiming_uniform\""]);
        Assert.Equal(Ddpo.Schedulers.DdimFinalStep.Diffusers, c.Sample.FinalStep);
        Assert.Equal(Ddpo.Models.Lora.LoraInit.KaimingUniform, c.Lora.Init);
        var e = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["lora.init=\"uniform\""]));
        Assert.Contains("lora.init", e.Message);
        Assert.Contains("\"gaussian\", \"kaiming_uniform\"", e.Message);
        var f = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["sample.final_step=\"pytorch\""]));
        Assert.Contains("sample.final_step", f.Message);
        Assert.Contains("\"ddpo\", \"diffusers\"", f.Message);
    }

    [Fact]
    public void CrossKeyChecksFollowDdpoPytorchAssertions()
    {
        // 2 samples per epoch cannot fill a train batch of 2 x 2 accumulation steps.
        var e = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["sample.batch_size=2", "sample.num_batches_per_epoch=1", "train.batch_size=2", "train.gradient_accumulation_steps=2"]));
        Assert.Contains("train.gradient_accumulation_steps", e.Message);
        var e2 = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["sample.batch_size=3", "train.batch_size=2"]));
        Assert.Contains("train.batch_size", e2.Message);
        var e3 = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["sample.num_steps=3", "train.timestep_fraction=0.2"]));
        Assert.Contains("train.timestep_fraction", e3.Message);
    }

    [Fact]
    public void PromptFnChangeClearsStaleKwargsAndRewardsTableSelectsWeighted()
    {
        var c = DdpoConfig.Load(null, "prompt_image_alignment", ["prompt_fn=simple_animals"]);
        Assert.Empty(c.PromptFnKwargs);

        var d = DdpoConfig.Load(null, null, ["prompt_fn=nouns_activities", "prompt_fn_kwargs.activities_file=activities.txt"]);
        Assert.Equal("activities.txt", d.PromptFnKwargs["activities_file"]);

        var file = Write("w.toml", "[rewards]\njpeg_compressibility = 1.0\naesthetic_score = 0.5\n");
        var w = DdpoConfig.Load(file, null, null);
        Assert.Equal(DdpoConfig.WeightedRewardName, w.RewardFn);
        Assert.Equal(0.5, w.Rewards["aesthetic_score"]);

        var back = DdpoConfig.Load(file, null, ["reward_fn=jpeg_incompressibility"]);
        Assert.Empty(back.Rewards);

        var bad = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["reward_fn=weighted"]));
        Assert.Contains("rewards", bad.Message);
    }

    [Fact]
    public void ToTomlRoundTripsTheResolvedConfig()
    {
        var c = DdpoConfig.Load(null, "prompt_image_alignment", ["train.learning_rate=1.5e-5", "run_name=\"my run\"", "rewards.jpeg_compressibility=2", "rewards.aesthetic_score=0.25"]);
        var toml = c.ToToml();
        var file = Write("resolved.toml", toml);
        var again = DdpoConfig.Load(file, null, null);
        Assert.Equal(toml, again.ToToml());
        Assert.Equal(c.ComputeHash(), again.ComputeHash());
        Assert.Equal(1.5e-5, again.Train.LearningRate);
        Assert.Equal("my run", again.RunName);
        Assert.Equal(2.0, again.Rewards["jpeg_compressibility"]);
        Assert.Contains("[per_prompt_stat_tracking]", toml);
        Assert.Contains("prompt_fn_kwargs = { activities_file = \"activities.txt\", nouns_file = \"simple_animals.txt\" }", toml);
        Assert.NotEqual(DdpoConfig.Load(null, null, null).ComputeHash(), c.ComputeHash());
    }

    [Fact]
    public void InvalidTomlIsAConfigExceptionNamingTheFile()
    {
        var file = Write("broken.toml", "[train\nlearning_rate = \n");
        var e = Assert.Throws<ConfigException>(() => DdpoConfig.Load(file, null, null));
        Assert.Contains(file, e.Message);
        Assert.Throws<ConfigException>(() => DdpoConfig.Load(Path.Combine(_dir, "missing.toml"), null, null));
        Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["no_equals_sign"]));
    }
}
