using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Rewards;
using Ddpo.Rewards.Learned;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Rewards;

/// <summary><c>pickscore</c>, <c>clipscore</c> and <c>hpsv2</c> built from config: registration, the errors naming the key, and loading the fixture folders.</summary>
public sealed class ClipRewardFactoryTests
{
    private static string Fixture(params string[] parts) => TestPaths.Fixture(["refenv", .. parts]);

    [Theory]
    [InlineData(RewardNames.PickScore, "reward.pickscore.model")]
    [InlineData(RewardNames.ClipScore, "reward.clipscore.model")]
    [InlineData(RewardNames.Hpsv2, "reward.hpsv2.model")]
    public void MissingModelNamesTheKey(string name, string key)
    {
        var registry = RewardFactory.CreateRegistry(DdpoConfig.Load(null, null, null));
        Assert.True(registry.Contains(name));
        var e = Assert.Throws<ConfigException>(() => registry.Create(name));
        Assert.StartsWith(key + ":", e.Message);
        Assert.Contains("--set " + key, e.Message);
        var absent = RewardFactory.CreateRegistry(DdpoConfig.Load(null, null, [$"{key}=/nonexistent/folder"]));
        Assert.Contains("not found", Assert.Throws<ConfigException>(() => absent.Create(name)).Message);
    }

    [Fact]
    public void FixtureFoldersLoadFromConfig()
    {
        var config = DdpoConfig.Load(null, null, [
            $"reward.pickscore.model={Fixture("pickscore", "model")}", $"reward.pickscore.processor={Fixture("pickscore", "processor")}",
            $"reward.clipscore.model={Fixture("clipscore", "model")}", $"reward.clipscore.processor={Fixture("clipscore", "processor")}",
            "reward.clipscore.batch_size=3",
            $"reward.hpsv2.model={Fixture("hpsv2", "model")}", $"reward.hpsv2.processor={Fixture("hpsv2", "tokenizer")}",
            "device=cpu"]);
        var registry = RewardFactory.CreateRegistry(config);
        using (var pick = (ClipModelReward)registry.Create(RewardNames.PickScore)) Assert.Equal(RewardNames.PickScore, pick.Name);
        using (var clip = (ClipModelReward)registry.Create(RewardNames.ClipScore)) Assert.Equal(3, clip.BatchSize);
        using (var hps = (Hpsv2Reward)registry.Create(RewardNames.Hpsv2)) Assert.Equal(RewardNames.Hpsv2, hps.Name);
        // The model folder holds no tokenizer: the error names the key to set.
        var noTokenizer = RewardFactory.CreateRegistry(DdpoConfig.Load(null, null, [$"reward.hpsv2.model={Fixture("hpsv2", "model")}"]));
        Assert.Contains("reward.hpsv2.processor", Assert.ThrowsAny<Exception>(() => noTokenizer.Create(RewardNames.Hpsv2)).Message);
    }
}
