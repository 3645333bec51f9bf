using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Config;

/// <summary>
/// The presets state the paper's totals (ddpo-pytorch config/dgx.py: per-GPU sizes x the GPUs of its machine) and the
/// per-process sizes are derived for the run's number of processes.
/// </summary>
public sealed class PresetTotalsTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("ddpo-totals");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // dgx.py: compressibility 8 GPUs x 8 x 4 = 256 per epoch, 8 x 4 x 2 = 64 per step; aesthetic 8 x 4 x 4 = 128 per
    // step; prompt_image_alignment 6 GPUs x 8 x 6 = 288 per epoch, 6 x 4 x 6 = 144 per step.
    [Theory]
    [InlineData("compressibility", 256, 64, 1)]
    [InlineData("compressibility", 256, 64, 2)]
    [InlineData("compressibility", 256, 64, 8)]
    [InlineData("incompressibility", 256, 64, 2)]
    [InlineData("aesthetic", 256, 128, 1)]
    [InlineData("aesthetic", 256, 128, 2)]
    [InlineData("aesthetic", 256, 128, 8)]
    [InlineData("prompt_image_alignment", 288, 144, 1)]
    [InlineData("prompt_image_alignment", 288, 144, 2)]
    [InlineData("prompt_image_alignment", 288, 144, 6)]
    public void PerProcessSizesMultiplyBackToThePapersTotals(string preset, int perEpoch, int perStep, int worldSize)
    {
        var c = DdpoConfig.Load(null, preset, null, worldSize);
        Assert.Equal(worldSize, c.WorldSize);
        Assert.Equal(perEpoch, worldSize * c.Sample.BatchSize * c.Sample.NumBatchesPerEpoch);
        Assert.Equal(perStep, worldSize * c.Train.BatchSize * c.Train.GradientAccumulationSteps);
        Assert.Equal((8, 4), (c.Sample.BatchSize, c.Train.BatchSize)); // dgx.py's per-GPU batch sizes are kept
        var counts = c.Counts;
        Assert.Equal(perEpoch, counts.SamplesPerEpoch);
        Assert.Equal(perStep, counts.SamplesPerStep);
        Assert.Equal(perEpoch / perStep, counts.OptimizerStepsPerEpoch);
        Assert.Equal("derived from sample.samples_per_epoch", c.OriginOf("sample.num_batches_per_epoch"));
    }

    [Fact]
    public void OnDgxsMachineThePresetsAreDgxPyPerGpu()
    {
        var c = DdpoConfig.Load(null, "compressibility", null, worldSize: 8);
        Assert.Equal((8, 4, 4, 2), (c.Sample.BatchSize, c.Sample.NumBatchesPerEpoch, c.Train.BatchSize, c.Train.GradientAccumulationSteps));
        var a = DdpoConfig.Load(null, "aesthetic", null, worldSize: 8);
        Assert.Equal((8, 4, 4, 4), (a.Sample.BatchSize, a.Sample.NumBatchesPerEpoch, a.Train.BatchSize, a.Train.GradientAccumulationSteps));
        var p = DdpoConfig.Load(null, "prompt_image_alignment", null, worldSize: 6);
        Assert.Equal((8, 6, 4, 6), (p.Sample.BatchSize, p.Sample.NumBatchesPerEpoch, p.Train.BatchSize, p.Train.GradientAccumulationSteps));
    }

    [Fact]
    public void TotalsThatDoNotSplitAreClearErrors()
    {
        var uneven = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, "compressibility", null, worldSize: 3));
        Assert.Contains("sample.samples_per_epoch", uneven.Message);
        Assert.Contains("3 processes", uneven.Message);
        Assert.Contains("preset 'compressibility'", uneven.Message);

        // 288 over 8 processes is 36 each: not whole batches of 8. The message says what would work.
        var batches = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, "prompt_image_alignment", null, worldSize: 8));
        Assert.Contains("36 per process", batches.Message);
        Assert.Contains("sample.batch_size = 8", batches.Message);
        Assert.Contains("e.g. 6, 4, 3, 2", batches.Message);
        Assert.Contains("multiple of 64", batches.Message);
        // ... and following it does work: 36 = 6 x 6 per process, 144 / 8 = 18 = 6 x 3.
        var fixedUp = DdpoConfig.Load(null, "prompt_image_alignment", ["sample.batch_size=6", "train.batch_size=6"], worldSize: 8);
        Assert.Equal((6, 3), (fixedUp.Sample.NumBatchesPerEpoch, fixedUp.Train.GradientAccumulationSteps));
        Assert.Equal((288, 144), (fixedUp.Counts.SamplesPerEpoch, fixedUp.Counts.SamplesPerStep));

        var step = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, "compressibility", ["train.total_batch_size=66"]));
        Assert.Contains("--set train.total_batch_size", step.Message);
        Assert.Contains("train.batch_size = 4", step.Message);

        // 60 splits into accumulation steps (15 x 4) but not the epoch of 256 into optimizer steps.
        var epoch = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, "compressibility", ["train.total_batch_size=60"]));
        Assert.Contains("train.total_batch_size", epoch.Message);
        Assert.Contains("256", epoch.Message);

        Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, "compressibility", null, worldSize: 0));
        Assert.Contains("sample.samples_per_epoch", Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["sample.samples_per_epoch=-1"])).Message);
    }

    [Fact]
    public void APerProcessCountSetInALaterLayerWinsOverThePresetsTotal()
    {
        // ddpo-pytorch style: the per-process count as given, on any number of processes.
        var c = DdpoConfig.Load(null, "compressibility", ["sample.num_batches_per_epoch=2", "train.gradient_accumulation_steps=1"], worldSize: 2);
        Assert.Equal((0, 0), (c.Sample.SamplesPerEpoch, c.Train.TotalBatchSize));
        Assert.Equal((2, 1), (c.Sample.NumBatchesPerEpoch, c.Train.GradientAccumulationSteps));
        Assert.Equal((32, 8), (c.Counts.SamplesPerEpoch, c.Counts.SamplesPerStep));
        Assert.Equal("--set", c.OriginOf("sample.samples_per_epoch"));

        // A file's per-process count beats the preset's total; a later --set total beats the file's count.
        var file = Path.Combine(_dir, "counts.toml");
        File.WriteAllText(file, "[sample]\nnum_batches_per_epoch = 16\n");
        var fromFile = DdpoConfig.Load(file, "aesthetic", null);
        Assert.Equal((0, 16), (fromFile.Sample.SamplesPerEpoch, fromFile.Sample.NumBatchesPerEpoch));
        Assert.Equal(128, fromFile.Train.TotalBatchSize); // the untouched pair keeps the preset's total
        Assert.Equal(32, fromFile.Train.GradientAccumulationSteps);
        var totalAgain = DdpoConfig.Load(file, "aesthetic", ["sample.samples_per_epoch=512"]);
        Assert.Equal(64, totalAgain.Sample.NumBatchesPerEpoch);

        // Batch sizes are per-process memory limits: changing one keeps the totals.
        var smaller = DdpoConfig.Load(null, "compressibility", ["sample.batch_size=4", "train.batch_size=2"]);
        Assert.Equal((64, 32), (smaller.Sample.NumBatchesPerEpoch, smaller.Train.GradientAccumulationSteps));
        Assert.Equal((256, 64), (smaller.Counts.SamplesPerEpoch, smaller.Counts.SamplesPerStep));

        // Both members of a pair in one layer: ambiguous.
        var both = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["sample.samples_per_epoch=16", "sample.num_batches_per_epoch=4"]));
        Assert.Contains("not both", both.Message);
        Assert.Contains("sample.num_batches_per_epoch", both.Message);
        File.WriteAllText(file, "[train]\ntotal_batch_size = 8\ngradient_accumulation_steps = 2\n");
        var bothInFile = Assert.Throws<ConfigException>(() => DdpoConfig.Load(file, null, null));
        Assert.Contains(file, bothInFile.Message);
        Assert.Contains("train.gradient_accumulation_steps", bothInFile.Message);
        // Turning the total off while setting the count is not ambiguous.
        Assert.Equal(8, DdpoConfig.Load(null, "compressibility", ["sample.samples_per_epoch=0", "sample.num_batches_per_epoch=8"]).Sample.NumBatchesPerEpoch);
    }

    [Theory]
    [InlineData("builtin")]
    [InlineData("compressibility+builtin")]
    [InlineData("incompressibility+builtin")]
    [InlineData("aesthetic+builtin")]
    [InlineData("prompt_image_alignment+builtin")]
    public void BuiltinLayerTakesOneOptimizerStepPerEpochOnOneDevice(string preset)
    {
        var c = DdpoConfig.Load(null, preset, null);
        Assert.Equal((96, 96), (c.Sample.SamplesPerEpoch, c.Train.TotalBatchSize));
        Assert.Equal((16, 6, 4, 24), (c.Sample.BatchSize, c.Sample.NumBatchesPerEpoch, c.Train.BatchSize, c.Train.GradientAccumulationSteps));
        Assert.Equal(1, c.Counts.OptimizerStepsPerEpoch);
    }

    [Fact]
    public void TheResolvedTomlRunsOnAnyNumberOfProcesses()
    {
        var onEight = DdpoConfig.Load(null, "aesthetic", null, worldSize: 8);
        var toml = onEight.ToToml();
        Assert.Contains("samples_per_epoch = 256\n", toml);
        Assert.Contains("total_batch_size = 128\n", toml);
        Assert.Contains("# num_batches_per_epoch = 4  (per process: samples_per_epoch 256 / (batch_size 8 x 8 processes))\n", toml);
        Assert.Contains("# gradient_accumulation_steps = 4  (per process: total_batch_size 128 / (batch_size 4 x 8 processes))\n", toml);

        var file = Path.Combine(_dir, "resolved.toml");
        File.WriteAllText(file, toml);
        var onOne = DdpoConfig.Load(file, null, null, worldSize: 1);
        Assert.Equal((32, 32), (onOne.Sample.NumBatchesPerEpoch, onOne.Train.GradientAccumulationSteps));
        Assert.Equal(onEight.ComputeHash(), onOne.ComputeHash()); // the same settings, whatever the process count
        Assert.NotEqual(onEight.ComputeHash(), DdpoConfig.Load(file, null, ["sample.samples_per_epoch=512"]).ComputeHash());
        Assert.Equal(toml, DdpoConfig.Load(file, null, null, worldSize: 8).ToToml());

        // Without totals, the per-process keys are written as keys.
        var plain = DdpoConfig.Load(null, null, null).ToToml();
        Assert.Contains("\nnum_batches_per_epoch = 2\n", plain);
        Assert.Contains("\ngradient_accumulation_steps = 1\n", plain);
    }

    [Fact]
    public void SummaryStatesTotalsAndPerProcessSizes()
    {
        Assert.Equal(
            "256 samples per epoch, 64 per optimizer step, 4 optimizer steps per epoch; per process (1 process): 32 batches of 8 samples, 16 accumulation steps of 4",
            DdpoConfig.Load(null, "compressibility", null).Counts.Summary());
        Assert.Equal(
            "256 samples per epoch, 64 per optimizer step, 4 optimizer steps per epoch; per process (2 processes): 16 batches of 8 samples, 8 accumulation steps of 4",
            DdpoConfig.Load(null, "compressibility", null, worldSize: 2).Counts.Summary());
        // DDPO-SF takes one step per inner epoch.
        Assert.Equal(2, DdpoConfig.Load(null, "compressibility", ["algorithm=ddpo_sf", "train.num_inner_epochs=2"]).Counts.OptimizerStepsPerEpoch);
    }
}
