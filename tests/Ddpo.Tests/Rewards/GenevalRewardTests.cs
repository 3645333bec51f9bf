using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Rewards.Remote;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>The <c>geneval</c> reward: Flow-GRPO's reward-server fields, in JSON, against real HTTP servers on 127.0.0.1.</summary>
public sealed class GenevalRewardTests
{
    private static HttpRetryOptions Fast(int retries = 2) =>
        new(TimeSpan.FromSeconds(5), retries, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(50));

    private static string ExampleFile => Path.Combine(TestPaths.RepoRoot, "examples", "prompts", "geneval_example.jsonl");

    private static RewardBatch Batch(IReadOnlyList<PromptSample> samples)
    {
        var images = rand([samples.Count, 3, 8, 8], generator: new Generator(3));
        return new RewardBatch(images, samples.Select(s => s.Prompt).ToArray(), samples.Select(s => s.Metadata).ToArray());
    }

    /// <summary>
    /// A GenEval server as reward-server's: checks the fields Flow-GRPO sends, answers scores = include count / 4,
    /// rewards = 1 for counting prompts, strict_rewards = 0.5, and one group list per tag with -10 for other tags.
    /// </summary>
    internal static (int, string) GenevalServer(SeenRequest r, List<JsonObject> seen)
    {
        if (r.Method != "POST" || r.Path != "/") return (404, $"no route {r.Method} {r.Path}");
        var req = JsonNode.Parse(r.Body)!.AsObject();
        if (req["only_strict"]!.GetValue<bool>() != true) return (400, "only_strict should be true");
        var metas = req["meta_datas"]!.AsArray().Select(m => m!.AsObject()).ToArray();
        var images = req["images"]!.AsArray().Select(x => Convert.FromBase64String(x!.GetValue<string>())).ToArray();
        if (images.Length != metas.Length || images.Any(f => f[0] != 0xFF || f[1] != 0xD8)) return (400, "expected one JPEG per metadata");
        lock (seen) seen.AddRange(metas);
        string[] tags = ["single_object", "two_object", "counting", "colors", "position", "color_attr"];
        var groups = new JsonObject();
        foreach (var tag in tags)
        {
            groups[tag] = new JsonArray(metas.Select(m => (JsonNode?)(m["tag"]!.GetValue<string>() == tag ? 1.0 : -10.0)).ToArray());
        }
        var answer = new JsonObject
        {
            ["scores"] = new JsonArray(metas.Select(m => (JsonNode?)(m["include"]!.AsArray().Sum(c => c!["count"]!.GetValue<int>()) / 4.0)).ToArray()),
            ["rewards"] = new JsonArray(metas.Select(m => (JsonNode?)(m["tag"]!.GetValue<string>() == "counting" ? 1.0 : 0.0)).ToArray()),
            ["strict_rewards"] = new JsonArray(metas.Select(_ => (JsonNode?)0.5).ToArray()),
            ["group_rewards"] = groups,
            ["group_strict_rewards"] = groups.DeepClone(),
        };
        return (200, answer.ToJsonString());
    }

    [Fact]
    public async Task SendsEachRecordAndReadsScoresAndGroups()
    {
        var seen = new List<JsonObject>();
        using var server = LocalHttpServer.Answering((r, _) => GenevalServer(r, seen));
        var samples = PromptRecordSource.Load(ExampleFile).Samples;
        using var reward = new GenevalReward(new GenevalRewardOptions(server.BaseUrl, 4, true, Fast()));
        var batch = Batch(samples);
        var result = await reward.ScoreAsync(batch, CancellationToken.None);

        Assert.Equal(2, server.Requests.Count); // 6 records in batches of 4
        // Each record arrives as the .jsonl line held it: the prompt added back, numbers still numbers.
        var lines = File.ReadAllLines(ExampleFile).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(6, seen.Count);
        for (int i = 0; i < 6; i++) Assert.True(JsonNode.DeepEquals(lines[i], seen[i]), $"record {i}: {seen[i].ToJsonString()}");

        Assert.Equal([0.25f, 0.5f, 0.75f, 0.25f, 0.5f, 0.5f], result.Rewards);
        Assert.Equal([0f, 0f, 1f, 0f, 0f, 0f], result.Details!["accuracy"]);
        Assert.All(result.Details["strict_accuracy"], v => Assert.Equal(0.5f, v));
        // Group lists: 1 for the image's own tag, NaN (the server's -10) for the others.
        Assert.Equal(1f, result.Details["counting_accuracy"][2]);
        Assert.True(float.IsNaN(result.Details["counting_accuracy"][0]));
        Assert.Equal(1f, result.Details["color_attr_strict_accuracy"][5]);
        Assert.Equal(2 + 2 * 6, result.Details.Count);

        // The JPEG is PIL's at quality 75 (Flow-GRPO's img.save(buffer, format="JPEG")).
        var first = Convert.FromBase64String(JsonNode.Parse(server.Requests[0].Body)!["images"]![0]!.GetValue<string>());
        var rgb = Ddpo.Rewards.JpegEncoding.ToRgbBytes(batch.Images.narrow(0, 0, 1));
        Assert.Equal(Ddpo.Rewards.JpegEncoding.Encode(rgb, 8, 8, 75), first);
    }

    [Fact]
    public void MetadataWithoutRecordJsonIsReadBack()
    {
        // Metadata restored as plain strings (e.g. from saved samples): arrays and objects are JSON again.
        var record = GenevalReward.Record("a photo of two cats", new Dictionary<string, string>
        {
            ["tag"] = "counting",
            ["include"] = "[{\"class\": \"cat\", \"count\": 2}]",
            ["note"] = "[not json",
        });
        Assert.Equal("counting", record["tag"]!.GetValue<string>());
        Assert.Equal(2, record["include"]![0]!["count"]!.GetValue<int>());
        Assert.Equal("[not json", record["note"]!.GetValue<string>());
        Assert.Equal("a photo of two cats", record["prompt"]!.GetValue<string>());
        Assert.Null(GenevalReward.Problem(record));
    }

    [Fact]
    public async Task PromptsWithoutGenevalMetadataAreNamed()
    {
        using var server = LocalHttpServer.Answering((_, _) => (500, "unused"));
        using var reward = new GenevalReward(new GenevalRewardOptions(server.BaseUrl, 4, true, Fast()));
        var check = Assert.Throws<ConfigException>(() => RewardPromptChecks.Check(reward,
            [new PromptSample("a photo of a cat", PromptSample.NoMetadata)], "prompt_fn 'animals'"));
        Assert.Contains("'a photo of a cat' of prompt_fn 'animals'", check.Message);
        Assert.Contains("\"tag\"", check.Message);
        var noInclude = new Dictionary<string, string> { ["tag"] = "counting" };
        var e = await Assert.ThrowsAsync<ConfigException>(() => reward.ScoreAsync(Batch([new PromptSample("three apples", noInclude)]), CancellationToken.None));
        Assert.Contains("'three apples'", e.Message);
        Assert.Contains("\"include\"", e.Message);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public async Task FaultsGiveClearErrors()
    {
        var samples = PromptRecordSource.Load(ExampleFile).Samples.Take(2).ToArray();

        var down = $"http://127.0.0.1:{LocalHttpServer.FreePort()}";
        using (var reward = new GenevalReward(new GenevalRewardOptions(down, 4, true, Fast(retries: 1))))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(samples), CancellationToken.None));
            Assert.Contains(down, e.Message);
            Assert.Contains("could not connect", e.Message);
        }

        var seen = new List<JsonObject>();
        using (var server = LocalHttpServer.Answering((r, i) => i == 0 ? (500, "Traceback: CUDA out of memory") : GenevalServer(r, seen)))
        using (var reward = new GenevalReward(new GenevalRewardOptions(server.BaseUrl, 4, true, Fast())))
        {
            var result = await reward.ScoreAsync(Batch(samples), CancellationToken.None);
            Assert.Equal(2, server.Requests.Count);
            Assert.Equal([0.25f, 0.5f], result.Rewards);
        }

        using (var server = LocalHttpServer.Answering((_, _) => (200, "\u0080\u0004\u0095 pickle")))
        using (var reward = new GenevalReward(new GenevalRewardOptions(server.BaseUrl, 4, true, Fast(retries: 1))))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(samples), CancellationToken.None));
            Assert.Contains("malformed JSON", e.Message);
            Assert.Equal(2, server.Requests.Count);
        }

        using (var server = LocalHttpServer.Answering((_, _) => (200, """{"scores": [1, 1], "rewards": [1, 1], "strict_rewards": [1]}""")))
        using (var reward = new GenevalReward(new GenevalRewardOptions(server.BaseUrl, 4, true, Fast(retries: 0))))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(samples), CancellationToken.None));
            Assert.Contains("strict_rewards has 1 values for 2 images", e.Message);
        }

        using (var server = LocalHttpServer.Answering((_, _) => (200, """{"scores": [1, 1], "rewards": [1, 1], "strict_rewards": [1, 1], "group_rewards": {"counting": [1]}}""")))
        using (var reward = new GenevalReward(new GenevalRewardOptions(server.BaseUrl, 4, true, Fast(retries: 0))))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(samples), CancellationToken.None));
            Assert.Contains("group_rewards.counting has 1 values for 2 images", e.Message);
        }

        using (var server = LocalHttpServer.Answering((_, _) => (200, """{"rewards": [1, 1], "strict_rewards": [1, 1]}""")))
        using (var reward = new GenevalReward(new GenevalRewardOptions(server.BaseUrl, 4, true, Fast(retries: 0))))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(samples), CancellationToken.None));
            Assert.Contains("no \"scores\" array", e.Message);
        }
    }
}
