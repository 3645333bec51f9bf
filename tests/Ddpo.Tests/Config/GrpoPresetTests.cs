using Ddpo.Config;
using Ddpo.Schedulers;
using Xunit;

namespace Ddpo.Tests.Config;

public sealed class GrpoPresetTests
{
    [Theory]
    [InlineData("compressibility-grpo", "jpeg_compressibility", 1)]
    [InlineData("compressibility-grpo", "jpeg_compressibility", 4)]
    [InlineData("incompressibility-grpo", "jpeg_incompressibility", 2)]
    [InlineData("aesthetic-grpo", "aesthetic_score", 8)]
    public void GrpoPresetsCarryFlowGrposValues(string preset, string reward, int worldSize)
    {
        var c = DdpoConfig.Load(null, preset, null, worldSize);
        Assert.Equal(TrainingAlgorithm.Grpo, c.Algorithm);
        Assert.Equal(reward, c.RewardFn);
        Assert.Equal(16, c.Sample.GroupSize);
        Assert.Equal(0.04, c.Train.KlCoef);
        Assert.Equal(1e-4, c.Train.ClipRange);
        Assert.Equal(5.0, c.Train.AdvClipMax);
        Assert.Equal(3e-4, c.Train.LearningRate);
        // 16 prompts x 16 images per epoch, two optimizer steps, on any number of processes.
        Assert.Equal(256, c.Counts.SamplesPerEpoch);
        Assert.Equal(128, c.Counts.SamplesPerStep);
        Assert.Equal(0, c.Counts.SamplesPerEpochPerProcess % c.Sample.GroupSize);
        Assert.Equal(50, c.Sample.NumSteps); // the model's DDIM steps stay DDPO's
    }

    [Fact]
    public void GrpoPresetOnTheBuiltinModelKeepsTheAlgorithmAndTheKl()
    {
        var c = DdpoConfig.Load(null, "compressibility-grpo+builtin", null);
        Assert.Equal(TrainingAlgorithm.Grpo, c.Algorithm);
        Assert.Equal(4, c.Sample.GroupSize);
        Assert.Equal(0.04, c.Train.KlCoef);
        Assert.Equal(96, c.Counts.SamplesPerEpoch);
        Assert.Equal(1, c.Counts.OptimizerStepsPerEpoch);
        Assert.Contains("compressibility-grpo", ConfigPresets.Names);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    public void MixGrpoPresetSlidesAFourStepWindowOverTwentyFiveSteps(int worldSize)
    {
        var c = DdpoConfig.Load(null, "flux-compressibility-mixgrpo", null, worldSize);
        Assert.Equal(TrainingAlgorithm.Grpo, c.Algorithm);
        Assert.Equal(25, c.Sample.NumSteps);
        Assert.Equal(0.7, c.Sample.Eta);
        Assert.Equal("flow_sde", c.Sample.SdeType);
        Assert.Equal(12, c.Sample.GroupSize);
        Assert.Equal(384, c.Counts.SamplesPerEpoch);
        Assert.Equal(4, c.Counts.OptimizerStepsPerEpoch);
        Assert.Equal(0.0, c.Train.KlCoef);
        Assert.Equal(new StepWindow(0, 4), SdeWindow.At(c.Sample, 24));
        Assert.Equal(new StepWindow(1, 5), SdeWindow.At(c.Sample, 25));
        Assert.Equal(new StepWindow(21, 25), SdeWindow.At(c.Sample, 10_000)); // stops at the end
    }
}
