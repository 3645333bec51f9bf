using System.Text.Json.Nodes;
using Ddpo.Config;
using Ddpo.Rewards;
using Ddpo.Rewards.Alignment;
using Ddpo.Rewards.Remote;
using Ddpo.Text;
using Xunit;

namespace Ddpo.Tests.Rewards;

/// <summary>Prompt-image alignment and strict satisfaction through a fake OpenAI-compatible VLM on 127.0.0.1.</summary>
public sealed class AlignmentRewardTests
{
    private static OpenAiVisionOptions Options(string baseUrl, string model = "fake-llava", string? key = null, int retries = 2, double timeoutS = 10) =>
        new(baseUrl, model, key, 64, 0, 4, new HttpRetryOptions(TimeSpan.FromSeconds(timeoutS), retries, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(50)));

    private static IReadOnlyDictionary<string, string>[] NoMeta(int n) => Enumerable.Repeat(Ddpo.Prompts.PromptSample.NoMetadata, n).ToArray();

    [Fact]
    public async Task MatchingAnswersScoreHigherThanWrongOnes()
    {
        using var server = LocalHttpServer.Answering((r, _) => FakeVlm.Handle(r));
        using var reward = new PromptImageAlignmentReward(new OpenAiVisionClient(Options(server.BaseUrl + "/v1", key: "secret")), BertScorer.CreateDefault());
        // Images show a cat, a dog, a cat; all prompts ask for a cat (image 1 is wrong), and image 2's prompt asks for a penguin.
        using var images = FakeVlm.Image(0, 1, 0);
        var prompts = new[] { "a cat riding a bike", "a cat riding a bike", "a penguin riding a bike" };
        var result = await reward.ScoreAsync(new RewardBatch(images, prompts, NoMeta(3)), CancellationToken.None);

        Assert.Equal(3, server.Requests.Count);
        Assert.Equal(["A cat is riding a bicycle down a street.", "A dog is riding a bicycle down a street.", "A cat is riding a bicycle down a street."], reward.LastAnswers);
        Assert.True(result.Rewards[0] > result.Rewards[1] + 0.02, $"matching {result.Rewards[0]} vs wrong animal {result.Rewards[1]}");
        Assert.True(result.Rewards[0] > result.Rewards[2] + 0.02, $"matching {result.Rewards[0]} vs wrong prompt {result.Rewards[2]}");
        Assert.Equal(new[] { 0f, 0f, 0f }, result.Details!["invalid_answer"]);
        Assert.Equal(3, result.Details["precision"].Length);

        // The request: the paper's question, a PNG data URL, the model, the bearer key.
        var body = JsonNode.Parse(server.Requests[0].Body)!;
        Assert.Equal("fake-llava", body["model"]!.GetValue<string>());
        Assert.Equal(PromptImageAlignmentReward.DefaultQuestion, body["messages"]![0]!["content"]![0]!["text"]!.GetValue<string>());
        Assert.StartsWith("data:image/png;base64,", body["messages"]![0]!["content"]![1]!["image_url"]!["url"]!.GetValue<string>());
        Assert.Equal("Bearer secret", server.Requests[0].Authorization);

        // The reward is the BERTScore recall against "The image contains {prompt}".
        using var scorer = BertScorer.CreateDefault();
        var direct = scorer.Score(reward.LastAnswers, prompts.Select(PromptImageAlignmentReward.Reference).ToArray());
        Assert.Equal(direct.Recall, result.Rewards);
    }

    [Fact]
    public async Task ModelIsTakenFromTheServerWhenNotConfigured()
    {
        using var server = LocalHttpServer.Answering((r, _) => FakeVlm.Handle(r));
        using var client = new OpenAiVisionClient(Options(server.BaseUrl + "/v1", model: ""));
        Assert.Equal("fake-llava", await client.ResolveModelAsync(CancellationToken.None));
        var answer = await client.AskAsync(RewardImageEncoding.EncodeAll(FakeVlm.Image(2), RewardImageFormat.Jpeg)[0], "image/jpeg", "Which animal?", CancellationToken.None);
        Assert.Equal("It is a horse.", answer);
        Assert.Equal(["GET /v1/models", "POST /v1/chat/completions"], server.Requests.Select(r => $"{r.Method} {r.Path}"));
        Assert.Null(server.Requests[1].Authorization);
    }

    [Fact]
    public async Task EmptyAnswersGiveNaNWithADetail()
    {
        using var server = LocalHttpServer.Answering((r, i) => FakeVlm.Handle(r, (q, animal) => animal == "dog" ? null : JsonValue.Create(FakeVlm.Answer(q, animal))));
        var log = new List<string>();
        using var reward = new PromptImageAlignmentReward(new OpenAiVisionClient(Options(server.BaseUrl + "/v1")), BertScorer.CreateDefault(), log: log.Add);
        using var images = FakeVlm.Image(0, 1);
        var result = await reward.ScoreAsync(new RewardBatch(images, ["a cat", "a dog"], NoMeta(2)), CancellationToken.None);
        Assert.True(float.IsFinite(result.Rewards[0]));
        Assert.True(float.IsNaN(result.Rewards[1]));
        Assert.Equal(new[] { 0f, 1f }, result.Details!["invalid_answer"]);
        Assert.Contains(log, l => l.Contains("image 1") && l.Contains("/v1/chat/completions"));
        Assert.Equal(1, RewardChecks.Finite(result.Rewards).NonFiniteCount);
    }

    [Fact]
    public async Task TextPartsAnswersAreJoined()
    {
        using var server = LocalHttpServer.Answering((r, _) => FakeVlm.Handle(r, (q, animal) =>
            new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "A " }, new JsonObject { ["type"] = "text", ["text"] = animal })));
        using var client = new OpenAiVisionClient(Options(server.BaseUrl + "/v1"));
        var answer = await client.AskAsync(RewardImageEncoding.EncodeAll(FakeVlm.Image(3), RewardImageFormat.Png)[0], "image/png", "?", CancellationToken.None);
        Assert.Equal("A penguin", answer);
    }

    [Fact]
    public async Task VlmFailuresAreRetriedAndNamed()
    {
        using var flaky = LocalHttpServer.Answering((r, i) => i == 0 ? (502, "bad gateway") : FakeVlm.Handle(r));
        using (var client = new OpenAiVisionClient(Options(flaky.BaseUrl + "/v1")))
        {
            var answer = await client.AskAsync(RewardImageEncoding.EncodeAll(FakeVlm.Image(1), RewardImageFormat.Png)[0], "image/png", "Which animal?", CancellationToken.None);
            Assert.Equal("It is a dog.", answer);
            Assert.Equal(2, flaky.Requests.Count);
        }

        using var noChoices = LocalHttpServer.Answering((_, _) => (200, """{"error": {"message": "model not loaded"}}"""));
        using (var client = new OpenAiVisionClient(Options(noChoices.BaseUrl + "/v1", retries: 1)))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() =>
                client.AskAsync(RewardImageEncoding.EncodeAll(FakeVlm.Image(1), RewardImageFormat.Png)[0], "image/png", "?", CancellationToken.None));
            Assert.Contains(noChoices.BaseUrl + "/v1/chat/completions", e.Message);
            Assert.Contains("model not loaded", e.Message);
            Assert.Equal(2, noChoices.Requests.Count);
        }

        var closed = $"http://127.0.0.1:{LocalHttpServer.FreePort()}/v1";
        using (var client = new OpenAiVisionClient(Options(closed, retries: 1)))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() =>
                client.AskAsync(RewardImageEncoding.EncodeAll(FakeVlm.Image(1), RewardImageFormat.Png)[0], "image/png", "?", CancellationToken.None));
            Assert.Contains(closed + "/chat/completions", e.Message);
            Assert.Contains("could not connect", e.Message);
        }
    }

    [Fact]
    public void PromptRequirementsAreCheckedThroughWeightedSumsAndWatches()
    {
        // No request is made: the check reads the prompts' metadata only.
        using var strict = new StrictSatisfactionReward(new OpenAiVisionClient(Options("http://127.0.0.1:9/v1")));
        var animals = Ddpo.Prompts.PromptSources.Create("animals").Samples;
        var jpeg = new JpegCompressibilityReward();
        RewardPromptChecks.Check(jpeg, animals, "prompt_fn 'animals'");
        foreach (var reward in new IRewardFunction[] { strict, new WeightedSumReward([(jpeg, 1.0), (strict, 0.5)]), new WatchedReward(jpeg, [strict]) })
        {
            var e = Assert.Throws<Ddpo.Base.ConfigException>(() => RewardPromptChecks.Check(reward, animals, "prompt_fn 'animals'"));
            Assert.Contains("of prompt_fn 'animals'", e.Message);
            Assert.Contains("file:PATH.jsonl", e.Message);
        }
    }

    [Fact]
    public async Task StrictSatisfactionCountsExpectedAnswers()
    {
        using var server = LocalHttpServer.Answering((r, _) => FakeVlm.Handle(r));
        var log = new List<string>();
        using var reward = new StrictSatisfactionReward(new OpenAiVisionClient(Options(server.BaseUrl + "/v1")), log: log.Add);
        var qa = new Dictionary<string, string>
        {
            ["questions"] = """["What animal is in the image?", "Is it riding a bike?"]""",
            ["answers"] = """["cat", "yes"]""",
        };
        var single = new Dictionary<string, string> { ["questions"] = "What animal is this?", ["answers"] = "penguin" };
        using var images = FakeVlm.Image(0, 1, 3, 0);
        var metadata = new IReadOnlyDictionary<string, string>[] { qa, qa, single, new Dictionary<string, string>() };
        var result = await reward.ScoreAsync(new RewardBatch(images, ["p", "p", "p", "p"], metadata), CancellationToken.None);
        Assert.Equal(1f, result.Rewards[0]);      // cat: both right
        Assert.Equal(0.5f, result.Rewards[1]);    // dog: the animal is wrong
        Assert.Equal(1f, result.Rewards[2]);      // penguin, one question as a plain string
        Assert.True(float.IsNaN(result.Rewards[3]));
        Assert.Equal(new[] { 0f, 0f, 0f, 1f }, result.Details!["invalid_metadata"]);
        Assert.Contains(log, l => l.Contains("questions"));
        Assert.Equal(5, server.Requests.Count);
    }

    [Fact]
    public async Task PresetRunsAgainstTheServerGivenByBaseUrl()
    {
        using var server = LocalHttpServer.Answering((r, _) => FakeVlm.Handle(r));
        var config = DdpoConfig.Load(null, "prompt_image_alignment",
            ["device=cpu", $"reward.vlm.base_url={server.BaseUrl}/v1", "reward.vlm.model=fake-llava", "reward.vlm.backoff_s=0.01"]);
        Assert.Equal(RewardNames.PromptImageAlignment, config.RewardFn);
        var reward = RewardFactory.CreateRegistry(config).Create(config.RewardFn, config.Rewards);
        using var _ = reward as IDisposable;
        Assert.IsType<PromptImageAlignmentReward>(reward);
        using var images = FakeVlm.Image(1, 2);
        var result = await reward.ScoreAsync(new RewardBatch(images, ["a dog washing the dishes", "a dog washing the dishes"], NoMeta(2)), CancellationToken.None);
        Assert.True(result.Rewards[0] > result.Rewards[1]);
        Assert.Equal(2, server.Requests.Count);
    }
}
