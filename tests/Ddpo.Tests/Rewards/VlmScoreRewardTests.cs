using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Rewards.Alignment;
using Ddpo.Rewards.Remote;
using Xunit;

namespace Ddpo.Tests.Rewards;

/// <summary>The <c>vlm_score</c> reward: templates, the strict reading of the score, and an OpenAI-compatible server on 127.0.0.1.</summary>
public sealed class VlmScoreRewardTests
{
    private static HttpRetryOptions Fast(int retries = 2) =>
        new(TimeSpan.FromSeconds(5), retries, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(50));

    private static OpenAiVisionClient Client(string baseUrl, int retries = 2) =>
        new(new OpenAiVisionOptions(baseUrl + "/v1", "fake-unifiedreward", null, 64, 0, 4, Fast(retries)));

    private static RewardBatch Batch(params int[] animals) =>
        new(FakeVlm.Image(animals), animals.Select(a => $"a {FakeVlm.Animals[a]} on a bike").ToArray(),
            animals.Select(_ => PromptSample.NoMetadata).ToArray());

    [Theory]
    [InlineData("The image is sharp and matches.\nFinal Score: 4", 4.0)]
    [InlineData("Final Score: 4.5", 4.5)]
    [InlineData("final score:**3**", 3.0)]
    [InlineData(" 2 ", 2.0)]
    [InlineData("5.", 5.0)]
    [InlineData("Final Score: 1", 1.0)]
    public void ReadsTheScore(string answer, double expected)
    {
        Assert.Equal(expected, VlmScoreScale.OneToFive.Read(answer, out var problem));
        Assert.Equal("", problem);
    }

    [Theory]
    [InlineData("Final Score: 10", "outside 1-5")] // Flow-GRPO's [1-5] pattern would read "1" here
    [InlineData("Final Score: 0", "outside 1-5")]
    [InlineData("Final Score: excellent", "no number after 'Final Score:'")]
    [InlineData("I would give it a 4 out of 5", "not a number")]
    [InlineData("", "not a number")]
    public void RefusesAnswersWithoutAScoreInRange(string answer, string why)
    {
        Assert.Null(VlmScoreScale.OneToFive.Read(answer, out var problem));
        Assert.Contains(why, problem);
    }

    [Fact]
    public void ScalesMapToTheUnitInterval()
    {
        Assert.True(VlmScoreScale.TryParse("0-10", out var ten));
        Assert.Equal(0.7, ten.Normalise(ten.Read("Final Score: 7", out _)!.Value), 12);
        Assert.Equal(10.0, ten.Read("10", out _));
        Assert.Equal(0.0, VlmScoreScale.OneToFive.Normalise(1));
        Assert.Equal(1.0, VlmScoreScale.OneToFive.Normalise(5));
        Assert.False(VlmScoreScale.TryParse("1-7", out _));
    }

    [Fact]
    public async Task AsksTheTemplateWithTheImageFirstAndNormalisesTheScore()
    {
        // The fake model rates a cat 5, a dog 3 and a horse 1; a penguin gets an answer without a score.
        var ratings = new Dictionary<string, string> { ["cat"] = "Final Score: 5", ["dog"] = "Sharp.\nFinal Score: 3", ["horse"] = "Final Score: 1", ["penguin"] = "It is a penguin." };
        using var server = LocalHttpServer.Answering((r, _) => FakeVlm.Handle(r, (_, animal) => JsonValue.Create(ratings[animal])));
        var log = new List<string>();
        using var reward = new VlmScoreReward(Client(server.BaseUrl), VlmScoreTemplates.UnifiedRewardName, VlmScoreScale.OneToFive, log: log.Add);
        var result = await reward.ScoreAsync(Batch(0, 1, 2, 3), CancellationToken.None);

        Assert.Equal([1f, 0.5f, 0f], result.Rewards[..3]);
        Assert.True(float.IsNaN(result.Rewards[3]));
        Assert.Equal([5f, 3f, 1f], result.Details!["raw_score"][..3]);
        Assert.Equal([0f, 0f, 0f, 1f], result.Details["invalid_answer"]);
        var line = Assert.Single(log);
        Assert.Contains("image 3 (prompt 'a penguin on a bike')", line);
        Assert.Contains("It is a penguin.", line);
        Assert.Contains("reward NaN", line);

        // Flow-GRPO's message: the image part, then UnifiedReward's question with the caption in brackets.
        var request = server.Requests.Single(r => r.Body.Contains("dog on a bike", StringComparison.Ordinal));
        var parts = JsonNode.Parse(request.Body)!["messages"]![0]!["content"]!.AsArray();
        Assert.Equal("image_url", parts[0]!["type"]!.GetValue<string>());
        var question = parts[1]!["text"]!.GetValue<string>();
        Assert.StartsWith("<image>\nYou are given a text caption and a generated image", question);
        Assert.EndsWith("assign a score from 1 to 5 after 'Final Score:'.\nYour task is provided as follows:\nText Caption: [a dog on a bike]", question);
    }

    [Fact]
    public async Task ACustomTemplateOnATenPointScale()
    {
        using var server = LocalHttpServer.Answering((r, _) => FakeVlm.Handle(r, (q, _) => JsonValue.Create(q.Contains("cat", StringComparison.Ordinal) ? "8" : "2")));
        using var reward = new VlmScoreReward(Client(server.BaseUrl), "Rate 0-10 how well this shows {prompt}. Reply with the number only.", VlmScoreScale.ZeroToTen);
        var result = await reward.ScoreAsync(Batch(0, 1), CancellationToken.None);
        Assert.Equal(0.8f, result.Rewards[0], 6);
        Assert.Equal(0.2f, result.Rewards[1], 6);
        Assert.Contains(server.Requests, r => r.Body.Contains("how well this shows a cat on a bike.", StringComparison.Ordinal));
        Assert.Throws<ArgumentException>(() => new VlmScoreReward(Client(server.BaseUrl), "no placeholder", VlmScoreScale.ZeroToTen));
    }

    [Fact]
    public async Task FaultsGiveClearErrors()
    {
        var down = $"http://127.0.0.1:{LocalHttpServer.FreePort()}";
        using (var reward = new VlmScoreReward(Client(down, retries: 1), VlmScoreTemplates.UnifiedRewardName, VlmScoreScale.OneToFive))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(0), CancellationToken.None));
            Assert.Contains(down + "/v1/chat/completions", e.Message);
            Assert.Contains("could not connect", e.Message);
        }
        using (var server = LocalHttpServer.Answering((r, i) => i == 0 ? (500, "warming up") : FakeVlm.Handle(r, (_, _) => JsonValue.Create("Final Score: 4"))))
        using (var reward = new VlmScoreReward(Client(server.BaseUrl), VlmScoreTemplates.UnifiedRewardName, VlmScoreScale.OneToFive))
        {
            var result = await reward.ScoreAsync(Batch(0), CancellationToken.None);
            Assert.Equal([0.75f], result.Rewards);
            Assert.Equal(2, server.Requests.Count);
        }
        using (var server = LocalHttpServer.Answering((_, _) => (200, "{\"choices\": [")))
        using (var reward = new VlmScoreReward(Client(server.BaseUrl, retries: 1), VlmScoreTemplates.UnifiedRewardName, VlmScoreScale.OneToFive))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(0), CancellationToken.None));
            Assert.Contains("malformed JSON", e.Message);
        }
        using (var server = LocalHttpServer.Answering((_, _) => (200, "{\"choices\": []}")))
        using (var reward = new VlmScoreReward(Client(server.BaseUrl, retries: 0), VlmScoreTemplates.UnifiedRewardName, VlmScoreScale.OneToFive))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(0), CancellationToken.None));
            Assert.Contains("no \"choices\"", e.Message);
        }
    }

    [Fact]
    public void ServerRewardSettingsAreConfigKeysAndRegistered()
    {
        var c = DdpoConfig.Load(null, null, ["reward.vlm_score.scale=0-10", "reward.vlm_score.template=Rate {prompt} from 0 to 10.",
            "reward.ocr.base_url=http://127.0.0.1:9100", "reward.geneval.only_strict=false", "reward.geneval.batch_size=8"]);
        Assert.Equal("0-10", c.Reward.VlmScore.Scale);
        Assert.Equal("http://127.0.0.1:9100", c.Reward.Ocr.BaseUrl);
        Assert.False(c.Reward.Geneval.OnlyStrict);
        Assert.Contains("[reward.vlm_score]\ntemplate = \"Rate {prompt} from 0 to 10.\"", c.ToToml());

        var registry = RewardFactory.CreateRegistry(c);
        using (var ocr = (Ddpo.Rewards.Ocr.OcrReward)registry.Create(RewardNames.Ocr)) Assert.Equal("http://127.0.0.1:9100", ocr.Options.BaseUrl);
        using (var geneval = (GenevalReward)registry.Create(RewardNames.Geneval))
        {
            Assert.Equal(8, geneval.Options.BatchSize);
            Assert.Equal("http://127.0.0.1:18085", geneval.Options.Url);
        }
        using (var vlm = (VlmScoreReward)registry.Create(RewardNames.VlmScore)) Assert.Equal(VlmScoreScale.ZeroToTen, vlm.Scale);

        var scale = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["reward.vlm_score.scale=1-7"]));
        Assert.Contains("reward.vlm_score.scale", scale.Message);
        var template = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["reward.vlm_score.template=rate this"]));
        Assert.Contains("{prompt}", template.Message);
        var url = Assert.Throws<ConfigException>(() => DdpoConfig.Load(null, null, ["reward.geneval.base_url=localhost:18085"]));
        Assert.Contains("reward.geneval.base_url", url.Message);
    }
}
