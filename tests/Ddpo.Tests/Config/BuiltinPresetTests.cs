using Ddpo.Config;
using Xunit;

namespace Ddpo.Tests.Config;

public sealed class BuiltinPresetTests
{
    [Theory]
    [InlineData("compressibility+builtin", "animals_train", "jpeg_compressibility")]
    [InlineData("incompressibility+builtin", "animals_train", "jpeg_incompressibility")]
    [InlineData("prompt_image_alignment+builtin", "nouns_activities_train", "prompt_image_alignment")]
    [InlineData("builtin", "animals_train", "jpeg_compressibility")]
    public void BuiltinLayerSizesTheTaskAndKeepsItsKindOfPrompt(string preset, string promptFn, string rewardFn)
    {
        var c = DdpoConfig.Load(null, preset, []);
        Assert.Equal(promptFn, c.PromptFn);
        Assert.Equal(rewardFn, c.RewardFn);
        Assert.Equal("builtin", c.Model);
        Assert.Equal(10, c.Sample.NumSteps);
        Assert.Equal("fp32", c.Pretrained.Dtype);
        Assert.Equal(["image_contrast", "colorfulness"], c.WatchRewardNames);
    }

    [Fact]
    public void SetOverridesStillWinOverTheBuiltinLayer()
    {
        var c = DdpoConfig.Load(null, "compressibility+builtin", ["num_epochs=3", "prompt_fn=\"animals\""]);
        Assert.Equal(3, c.NumEpochs);
        Assert.Equal("animals", c.PromptFn);
    }
}
