using System.Text.Json.Nodes;
using Ddpo.Rewards;
using Ddpo.Rewards.Remote;
using SkiaSharp;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>The JSON reward protocol client against real HTTP servers on 127.0.0.1.</summary>
public sealed class RemoteRewardTests
{
    private static HttpRetryOptions Fast(int retries = 2, double timeoutS = 5) =>
        new(TimeSpan.FromSeconds(timeoutS), retries, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(50));

    private static RewardBatch Batch(int n, int seed = 1)
    {
        var g = new Generator((ulong)seed);
        var images = rand([n, 3, 8, 6], generator: g);
        var prompts = Enumerable.Range(0, n).Select(i => $"prompt number {i}").ToArray();
        var metadata = Enumerable.Range(0, n).Select(i => (IReadOnlyDictionary<string, string>)new Dictionary<string, string> { ["animal"] = $"animal{i}" }).ToArray();
        return new RewardBatch(images, prompts, metadata);
    }

    /// <summary>A reward server: reward = mean 8-bit value of the decoded image; details = prompt length and the metadata number.</summary>
    private static (int, string) MeanPixelServer(SeenRequest r)
    {
        var req = JsonNode.Parse(r.Body)!;
        var images = req["images"]!.AsArray().Select(x => Convert.FromBase64String(x!.GetValue<string>())).ToArray();
        var prompts = req["prompts"]!.AsArray().Select(x => x!.GetValue<string>()).ToArray();
        var meta = req["metadata"]!.AsArray().Select(m => m!["animal"]!.GetValue<string>()).ToArray();
        var rewards = new JsonArray();
        foreach (var file in images)
        {
            using var bitmap = SKBitmap.Decode(file);
            double sum = 0;
            for (int y = 0; y < bitmap.Height; y++)
                for (int x = 0; x < bitmap.Width; x++)
                {
                    var c = bitmap.GetPixel(x, y);
                    sum += c.Red + c.Green + c.Blue;
                }
            rewards.Add(sum / (3.0 * bitmap.Width * bitmap.Height));
        }
        var details = new JsonObject
        {
            ["prompt_length"] = new JsonArray(prompts.Select(p => (JsonNode?)p.Length).ToArray()),
            ["animal_number"] = new JsonArray(meta.Select(m => (JsonNode?)int.Parse(m["animal".Length..])).ToArray()),
        };
        return (200, new JsonObject { ["rewards"] = rewards, ["details"] = details }.ToJsonString());
    }

    [Fact]
    public async Task ScoresInBatchesThroughTheServer()
    {
        using var server = LocalHttpServer.Answering((r, _) => MeanPixelServer(r));
        using var reward = new RemoteReward(new RemoteRewardOptions(server.BaseUrl, 2, RewardImageFormat.Png, Fast()));
        var batch = Batch(3);
        var result = await reward.ScoreAsync(batch, CancellationToken.None);

        Assert.Equal(2, server.Requests.Count); // 3 images in batches of 2
        Assert.All(server.Requests, r => Assert.Equal(("POST", "/score"), (r.Method, r.Path)));
        var expected = ((batch.Images * 255).round().clamp(0, 255)).mean([1, 2, 3]);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(expected[i].item<float>(), result.Rewards[i], 3);
            Assert.Equal(batch.Prompts[i].Length, result.Details!["prompt_length"][i]);
            Assert.Equal(i, result.Details["animal_number"][i]);
        }
    }

    [Fact]
    public async Task JpegImagesAreSentAsJpeg()
    {
        using var server = LocalHttpServer.Answering((r, _) =>
        {
            var req = JsonNode.Parse(r.Body)!;
            var file = Convert.FromBase64String(req["images"]![0]!.GetValue<string>());
            bool jpeg = file[0] == 0xFF && file[1] == 0xD8 && req["image_format"]!.GetValue<string>() == "jpeg";
            return (200, $"{{\"rewards\": [{(jpeg ? 1 : 0)}]}}");
        });
        using var reward = new RemoteReward(new RemoteRewardOptions(server.BaseUrl + "/", 4, RewardImageFormat.Jpeg, Fast()));
        var result = await reward.ScoreAsync(Batch(1), CancellationToken.None);
        Assert.Equal([1f], result.Rewards);
    }

    [Fact]
    public async Task NullRewardsBecomeNaN()
    {
        using var server = LocalHttpServer.Answering((_, _) => (200, "{\"rewards\": [0.5, null]}"));
        using var reward = new RemoteReward(new RemoteRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast()));
        var result = await reward.ScoreAsync(Batch(2), CancellationToken.None);
        Assert.Equal(0.5f, result.Rewards[0]);
        Assert.True(float.IsNaN(result.Rewards[1]));
        Assert.Equal(1, RewardChecks.Finite(result.Rewards).NonFiniteCount);
    }

    [Fact]
    public async Task ConnectionRefusedIsRetriedThenNamesTheUrl()
    {
        var url = $"http://127.0.0.1:{LocalHttpServer.FreePort()}";
        var log = new List<string>();
        using var reward = new RemoteReward(new RemoteRewardOptions(url, 8, RewardImageFormat.Png, Fast(retries: 2)), log: log.Add);
        var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(1), CancellationToken.None));
        Assert.Contains(url + "/score", e.Message);
        Assert.Contains("could not connect", e.Message);
        Assert.Contains("after 3 attempt(s)", e.Message);
        Assert.Equal(3, e.Attempts);
        Assert.Equal(2, log.Count); // one line per retry
    }

    [Fact]
    public async Task TimeoutIsRetriedThenReported()
    {
        using var server = new LocalHttpServer(async (_, _) =>
        {
            await Task.Delay(1500);
            return (200, "{\"rewards\": [1]}");
        });
        using var reward = new RemoteReward(new RemoteRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 1, timeoutS: 0.2)));
        var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(1), CancellationToken.None));
        Assert.Contains("no answer within the timeout of 0.2 s", e.Message);
        Assert.Contains(server.BaseUrl + "/score", e.Message);
        Assert.Equal(2, server.Requests.Count);
    }

    [Fact]
    public async Task Http500IsRetriedAndTheBodyIsQuoted()
    {
        using var server = LocalHttpServer.Answering((_, _) => (500, "{\"error\": \"CUDA out of memory\"}"));
        using var reward = new RemoteReward(new RemoteRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 3)));
        var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(1), CancellationToken.None));
        Assert.Equal(4, server.Requests.Count);
        Assert.Contains("HTTP 500", e.Message);
        Assert.Contains("CUDA out of memory", e.Message);
        Assert.Contains(server.BaseUrl, e.Message);
    }

    [Fact]
    public async Task Http404FailsAtOnce()
    {
        using var server = LocalHttpServer.Answering((_, _) => (404, "no such route"));
        using var reward = new RemoteReward(new RemoteRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 3)));
        var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(1), CancellationToken.None));
        Assert.Single(server.Requests);
        Assert.Contains("HTTP 404", e.Message);
        Assert.Contains("no such route", e.Message);
    }

    [Fact]
    public async Task MalformedJsonIsRetriedThenReported()
    {
        using var server = LocalHttpServer.Answering((_, _) => (200, "<html>proxy error</html>"));
        using var reward = new RemoteReward(new RemoteRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 1)));
        var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(1), CancellationToken.None));
        Assert.Equal(2, server.Requests.Count);
        Assert.Contains("malformed JSON", e.Message);
        Assert.Contains("<html>proxy error</html>", e.Message);
    }

    [Fact]
    public async Task WrongRewardCountIsReported()
    {
        using var server = LocalHttpServer.Answering((_, _) => (200, "{\"rewards\": [1.0]}"));
        using var reward = new RemoteReward(new RemoteRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 0)));
        var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(2), CancellationToken.None));
        Assert.Single(server.Requests);
        Assert.Contains("rewards has 1 values for 2 images", e.Message);
    }

    [Fact]
    public async Task RecoversWhenTheServerComesBack()
    {
        using var server = LocalHttpServer.Answering((r, i) => i < 2 ? (503, "starting") : MeanPixelServer(r));
        var log = new List<string>();
        using var reward = new RemoteReward(new RemoteRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 5)), log: log.Add);
        var result = await reward.ScoreAsync(Batch(2), CancellationToken.None);
        Assert.Equal(3, server.Requests.Count);
        Assert.Equal(2, log.Count);
        Assert.Contains("HTTP 503", log[0]);
        Assert.All(result.Rewards, r => Assert.InRange(r, 0, 255));
    }

    [Fact]
    public void BackoffDoublesAndIsCapped()
    {
        var o = new HttpRetryOptions(TimeSpan.FromSeconds(1), 10, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5));
        Assert.Equal([1.0, 2.0, 4.0, 5.0, 5.0], Enumerable.Range(1, 5).Select(i => o.BackoffBefore(i).TotalSeconds).ToArray());
    }
}
