using Ddpo.Config;
using Ddpo.Schedulers;
using Xunit;

namespace Ddpo.Tests.Config;

/// <summary>The presets of the field's reward tasks load, validate, and carry their upstream values.</summary>
public sealed class RewardTaskPresetTests
{
    [Theory]
    [InlineData("sd3.5-pickscore", "pickscore", "file:dataset/pickscore/train.txt", 0.01, 1)]
    [InlineData("sd3.5-pickscore", "pickscore", "file:dataset/pickscore/train.txt", 0.01, 2)]
    [InlineData("sd3.5-geneval", "geneval", "file:dataset/geneval/train_metadata.jsonl", 0.04, 8)]
    [InlineData("sd3.5-ocr", "ocr", "file:dataset/ocr/train.txt", 0.04, 4)]
    [InlineData("sd3.5-imagereward", "imagereward", "file:dataset/pickscore/train.txt", 0.01, 1)]
    public void Sd35RewardTasksCarryFlowGrposValues(string preset, string reward, string prompts, double beta, int worldSize)
    {
        var c = DdpoConfig.Load(null, preset, null, worldSize);
        Assert.Equal(TrainingAlgorithm.Grpo, c.Algorithm);
        Assert.Equal(reward, c.RewardFn);
        Assert.Empty(c.Rewards);
        Assert.Equal(prompts, c.PromptFn);
        Assert.Empty(c.PromptFnKwargs);
        Assert.Equal(beta, c.Train.KlCoef);
        // grpo.py *_sd3: 10 steps, guidance 4.5, 512 px, noise level 0.7, 48 prompts x 24 images, two steps per epoch.
        Assert.Equal(10, c.Sample.NumSteps);
        Assert.Equal(4.5, c.Sample.GuidanceScale);
        Assert.Equal(512, c.Sample.Resolution);
        Assert.Equal(0.7, c.Sample.Eta);
        Assert.Equal("flow_sde", c.Sample.SdeType);
        Assert.Equal(0.99, c.Train.TimestepFraction);
        Assert.Equal(24, c.Sample.GroupSize);
        Assert.Equal(1152, c.Counts.SamplesPerEpoch);
        Assert.Equal(2, c.Counts.OptimizerStepsPerEpoch);
        Assert.Equal(3e-4, c.Train.LearningRate);
        Assert.Equal(1e-4, c.Train.ClipRange);
        Assert.Contains(preset, ConfigPresets.Names);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    public void FluxHpsv2CarriesDanceGrposValues(int worldSize)
    {
        var c = DdpoConfig.Load(null, "flux-hpsv2", null, worldSize);
        Assert.Equal(TrainingAlgorithm.Grpo, c.Algorithm);
        Assert.Equal("hpsv2", c.RewardFn);
        Assert.Equal("file:prompts.txt", c.PromptFn);
        Assert.Equal(16, c.Sample.NumSteps);
        Assert.Equal(0.3, c.Sample.Eta);
        Assert.Equal("dance_sde", c.Sample.SdeType);
        Assert.Equal(720, c.Sample.Resolution);
        Assert.Equal(12, c.Sample.GroupSize);
        Assert.Equal(0.6, c.Train.TimestepFraction);
        Assert.Equal(1e-5, c.Train.LearningRate);
        Assert.Equal(0.0, c.Train.KlCoef);
        Assert.Equal(192, c.Counts.SamplesPerEpoch);
        Assert.Equal(1, c.Counts.OptimizerStepsPerEpoch);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(32)]
    public void FluxMixGrpoMultiRewardSumsThreeGroupNormalisedRewards(int worldSize)
    {
        var c = DdpoConfig.Load(null, "flux-mixgrpo-multireward", null, worldSize);
        Assert.Equal(TrainingAlgorithm.Grpo, c.Algorithm);
        Assert.Equal(DdpoConfig.WeightedRewardName, c.RewardFn);
        Assert.Equal(DdpoConfig.AdvantageAggregation, c.RewardMix);
        Assert.Equal(new Dictionary<string, double> { ["hpsv2"] = 1.0, ["imagereward"] = 1.0, ["pickscore"] = 1.0 }, c.Rewards);
        Assert.Equal(["hpsv2", "imagereward", "pickscore"], c.RewardNamesUsed().Order().ToArray());
        Assert.Equal("file:data/prompts.txt", c.PromptFn);
        // MixGRPO's window over 25 steps stays the sliding-window preset's.
        Assert.Equal(25, c.Sample.NumSteps);
        Assert.Equal(new StepWindow(0, 4), SdeWindow.At(c.Sample, 0));
        Assert.Equal(384, c.Counts.SamplesPerEpoch);
        Assert.Equal(4, c.Counts.OptimizerStepsPerEpoch);
    }

    [Fact]
    public void APromptFileCanReplaceThePresetsAndTheBuiltinModelKeepsTheReward()
    {
        var c = DdpoConfig.Load(null, "sd3.5-ocr", ["prompt_fn=file:examples/prompts/ocr_example.txt"]);
        Assert.Equal("file:examples/prompts/ocr_example.txt", c.PromptFn);
        Assert.Equal("ocr", c.RewardFn);

        // A weighted preset overridden by a single reward drops the weights (ConfigLayer keeps the two consistent).
        var single = DdpoConfig.Load(null, "flux-mixgrpo-multireward", ["reward_fn=hpsv2", "reward_mix=reward_aggr"]);
        Assert.Equal("hpsv2", single.RewardFn);
        Assert.Empty(single.Rewards);
    }
}
