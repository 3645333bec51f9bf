using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Rewards;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Rewards;

/// <summary>The <c>[reward.*]</c> config sections and the registration of the learned rewards.</summary>
public sealed class RewardConfigTests
{
    [Fact]
    public void NestedRewardSectionsLoadFromTomlAndSet()
    {
        var dir = TestPaths.NewTempDir("reward-config");
        try
        {
            var file = Path.Combine(dir, "run.toml");
            File.WriteAllText(file, """
                reward_fn = "remote"

                [reward.server]
                base_url = "http://127.0.0.1:9001"
                batch_size = 4

                [reward.vlm]
                model = "llava"
                """);
            var c = DdpoConfig.Load(file, null, ["reward.vlm.base_url=http://127.0.0.1:8123/v1", "reward.bertscore.idf=true"]);
            Assert.Equal("http://127.0.0.1:9001", c.Reward.Server.BaseUrl);
            Assert.Equal(4, c.Reward.Server.BatchSize);
            Assert.Equal("llava", c.Reward.Vlm.Model);
            Assert.Equal("http://127.0.0.1:8123/v1", c.Reward.Vlm.BaseUrl);
            Assert.True(c.Reward.BertScore.Idf);
            Assert.Equal("--set reward.vlm.base_url", c.OriginOf("reward.vlm.base_url"));

            // The resolved TOML writes [reward.vlm] etc. and reads back to the same config.
            var toml = c.ToToml();
            Assert.Contains("[reward.vlm]\nbase_url = \"http://127.0.0.1:8123/v1\"", toml);
            var again = Path.Combine(dir, "resolved.toml");
            File.WriteAllText(again, toml);
            Assert.Equal(c.ComputeHash(), DdpoConfig.Load(again, null, null).ComputeHash());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void BadRewardSettingsNameTheKey()
    {
        var url = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["reward.vlm.base_url=localhost:8000"]));
        Assert.Contains("reward.vlm.base_url", url.Message);
        Assert.Contains("http://", url.Message);

        var format = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["reward.server.image_format=gif"]));
        Assert.Contains("png or jpeg", format.Message);

        var unknown = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["reward.vlm.url=http://x"]));
        Assert.Contains("base_url", unknown.Message); // lists the keys of [reward.vlm]

        var section = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["reward.llm.base_url=http://x"]));
        Assert.Contains("vlm", section.Message); // lists the sub-sections of [reward]
    }

    [Fact]
    public void AllLearnedRewardsAreRegistered()
    {
        var registry = RewardFactory.CreateRegistry(DdpoConfig.Load(null, null, null));
        foreach (var name in new[] { RewardNames.AestheticScore, RewardNames.PromptImageAlignment, RewardNames.VlmStrictSatisfaction, RewardNames.Remote, RewardNames.JpegCompressibility })
        {
            Assert.True(registry.Contains(name), name);
        }
        var remote = registry.Create(RewardNames.Remote);
        using var _ = remote as IDisposable;
        Assert.Equal("http://127.0.0.1:8090", ((Ddpo.Rewards.Remote.RemoteReward)remote).Options.BaseUrl);
    }
}
