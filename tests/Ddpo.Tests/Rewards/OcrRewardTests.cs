using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Rewards.Ocr;
using Ddpo.Rewards.Remote;
using Ddpo.Text;
using SkiaSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>The <c>ocr</c> reward: Flow-GRPO's normalisation and score, and the OCR server protocol against real HTTP servers on 127.0.0.1.</summary>
public sealed class OcrRewardTests
{
    private static HttpRetryOptions Fast(int retries = 2, double timeoutS = 5) =>
        new(TimeSpan.FromSeconds(timeoutS), retries, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(50));

    /// <summary>What the fake OCR server "reads" from an image whose red level is <c>40 k + 20</c>.</summary>
    private static readonly string[] Readings = ["Gone Fishing", "G0NE FISH1NG", "gone fishing today!", "", "qwertyuiopasdfghjklzxcvbnm"];

    private static Tensor Images(params int[] readings)
    {
        var images = zeros(readings.Length, 3, 8, 8);
        for (int i = 0; i < readings.Length; i++) images[i, 0].fill_((40 * readings[i] + 20) / 255.0);
        return images;
    }

    /// <summary>An OCR server: checks the request and answers the text its image encodes (null for reading 3).</summary>
    private static (int, string) OcrServer(SeenRequest r)
    {
        if (r.Method != "POST" || r.Path != "/ocr") return (404, $"no route {r.Method} {r.Path}");
        var req = JsonNode.Parse(r.Body)!;
        var texts = new JsonArray();
        foreach (var image in req["images"]!.AsArray())
        {
            using var bitmap = SKBitmap.Decode(Convert.FromBase64String(image!.GetValue<string>()));
            int k = (int)Math.Round((bitmap.GetPixel(4, 4).Red - 20) / 40.0);
            texts.Add(k == 3 ? null : JsonValue.Create(Readings[k]));
        }
        return (200, new JsonObject { ["texts"] = texts }.ToJsonString());
    }

    private static RewardBatch Batch(Tensor images, string prompt) =>
        new(images, Enumerable.Repeat(prompt, (int)images.shape[0]).ToArray(),
            Enumerable.Repeat(PromptSample.NoMetadata, (int)images.shape[0]).ToArray());

    [Fact]
    public void LevenshteinIsTheEditDistanceOverCodePoints()
    {
        Assert.Equal(3, Levenshtein.Distance("kitten", "sitting"));
        Assert.Equal(2, Levenshtein.Distance("flaw", "lawn"));
        Assert.Equal(3, Levenshtein.Distance("", "abc"));
        Assert.Equal(3, Levenshtein.Distance("abc", ""));
        Assert.Equal(0, Levenshtein.Distance("same", "same"));
        Assert.Equal(4, Levenshtein.Distance("abcd", "wxyz"));
        // An emoji is one Python character (two UTF-16 units): one edit, and a length of 2.
        Assert.Equal(1, Levenshtein.Distance("\U0001F600a", "a"));
        Assert.Equal(2, Levenshtein.Length("\U0001F600a"));
    }

    [Fact]
    public void TargetIsTheQuotedTextAsFlowGrpoSplitsIt()
    {
        Assert.Equal("helloworld", OcrTarget.From("New York Skyline with \"Hello World\" written with fireworks on the sky"));
        // prompt.split('"')[1]: the first quoted part; with one quote, everything after it.
        Assert.Equal("ab", OcrTarget.From("x \"A B\" y \"C\""));
        Assert.Equal("hithere", OcrTarget.From("a sign saying \"hi there"));
        // Only spaces are removed (Python's replace(' ', '')).
        Assert.Equal("a\tb", OcrTarget.From("\"A\tB\""));

        var none = Assert.Throws<ConfigException>(() => OcrTarget.From("a cat on a sofa"));
        Assert.Contains("'a cat on a sofa'", none.Message);
        Assert.Contains("double quotes", none.Message);
        var empty = Assert.Throws<ConfigException>(() => OcrTarget.From("a sign \"  \" here"));
        Assert.Contains("empty", empty.Message);
    }

    [Theory]
    [InlineData("Gone Fishing", 1.0)] // exact after normalisation
    [InlineData("G0NE FISH1NG", 1.0 - 2.0 / 11)] // two substitutions over 11 characters
    [InlineData("gone fishing today!", 1.0)] // the target is a substring: distance 0
    [InlineData("gonefishin", 1.0 - 1.0 / 11)] // one deletion
    [InlineData("", 0.0)] // nothing read
    [InlineData("qwertyuiopasdfghjklzxcvbnm", 0.0)] // distance above the length is capped
    public void ScoreIsOneMinusTheCappedDistanceOverTheLength(string recognised, double expected)
    {
        Assert.Equal(expected, OcrTarget.Score(recognised, OcrTarget.From("a sign that says \"Gone Fishing\"")), 12);
    }

    [Fact]
    public async Task ScoresTheServersTextsInBatches()
    {
        using var server = LocalHttpServer.Answering((r, _) => OcrServer(r));
        using var reward = new OcrReward(new OcrRewardOptions(server.BaseUrl, 2, RewardImageFormat.Png, Fast()));
        var result = await reward.ScoreAsync(Batch(Images(0, 1, 2, 3, 4), "a wooden sign that says \"Gone Fishing\""), CancellationToken.None);

        Assert.Equal(3, server.Requests.Count); // 5 images in batches of 2
        Assert.Equal("png", JsonNode.Parse(server.Requests[0].Body)!["image_format"]!.GetValue<string>());
        var expected = new[] { 1.0, 1.0 - 2.0 / 11, 1.0, 0.0, 0.0 };
        for (int i = 0; i < 5; i++) Assert.Equal(expected[i], result.Rewards[i], 6);
        Assert.Equal([0f, 2f, 0f, 11f, 11f], result.Details!["edit_distance"]);
        Assert.Equal(["Gone Fishing", "G0NE FISH1NG", "gone fishing today!", "", "qwertyuiopasdfghjklzxcvbnm"], reward.LastTexts);
    }

    [Fact]
    public async Task APromptWithoutQuotedTextIsNamedBeforeAnyRequest()
    {
        using var server = LocalHttpServer.Answering((r, _) => OcrServer(r));
        using var reward = new OcrReward(new OcrRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast()));
        var e = await Assert.ThrowsAsync<ConfigException>(() => reward.ScoreAsync(Batch(Images(0), "a cat on a sofa"), CancellationToken.None));
        Assert.Contains("'a cat on a sofa'", e.Message);
        Assert.Empty(server.Requests);

        var check = Assert.Throws<ConfigException>(() => RewardPromptChecks.Check(reward,
            [new PromptSample("a sign saying \"hi\"", PromptSample.NoMetadata), new PromptSample("a dog", PromptSample.NoMetadata)], "prompt_fn 'animals'"));
        Assert.Contains("'a dog' of prompt_fn 'animals'", check.Message);
    }

    [Fact]
    public async Task ServerDownNamesTheUrl()
    {
        var url = $"http://127.0.0.1:{LocalHttpServer.FreePort()}";
        using var reward = new OcrReward(new OcrRewardOptions(url, 8, RewardImageFormat.Png, Fast(retries: 1)));
        var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(Images(0), "\"x\""), CancellationToken.None));
        Assert.Contains(url + "/ocr", e.Message);
        Assert.Contains("could not connect", e.Message);
        Assert.Equal(2, e.Attempts);
    }

    [Fact]
    public async Task Http500ThenSuccessIsRetried()
    {
        using var server = LocalHttpServer.Answering((r, i) => i == 0 ? (500, "loading PaddleOCR") : OcrServer(r));
        var log = new List<string>();
        using var reward = new OcrReward(new OcrRewardOptions(server.BaseUrl, 8, RewardImageFormat.Jpeg, Fast()), log: log.Add);
        var result = await reward.ScoreAsync(Batch(Images(0), "\"Gone Fishing\""), CancellationToken.None);
        Assert.Equal(2, server.Requests.Count);
        Assert.Contains("HTTP 500", Assert.Single(log));
        Assert.Contains("loading PaddleOCR", log[0]);
        Assert.Equal([1f], result.Rewards);
    }

    [Fact]
    public async Task MalformedAnswersAndWrongCountsAreReported()
    {
        using (var server = LocalHttpServer.Answering((_, _) => (200, "{\"texts\": [\"a\"")))
        using (var reward = new OcrReward(new OcrRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 1))))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(Images(0), "\"x\""), CancellationToken.None));
            Assert.Contains("malformed JSON", e.Message);
            Assert.Equal(2, server.Requests.Count);
        }
        using (var server = LocalHttpServer.Answering((_, _) => (200, "{\"texts\": [\"a\"]}")))
        using (var reward = new OcrReward(new OcrRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 0))))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(Images(0, 1), "\"x\""), CancellationToken.None));
            Assert.Contains("texts has 1 values for 2 images", e.Message);
        }
        using (var server = LocalHttpServer.Answering((_, _) => (200, "{\"text\": [\"a\"]}")))
        using (var reward = new OcrReward(new OcrRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 0))))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(Images(0), "\"x\""), CancellationToken.None));
            Assert.Contains("no \"texts\" array", e.Message);
        }
        using (var server = LocalHttpServer.Answering((_, _) => (200, "{\"texts\": [3]}")))
        using (var reward = new OcrReward(new OcrRewardOptions(server.BaseUrl, 8, RewardImageFormat.Png, Fast(retries: 0))))
        {
            var e = await Assert.ThrowsAsync<RewardServerException>(() => reward.ScoreAsync(Batch(Images(0), "\"x\""), CancellationToken.None));
            Assert.Contains("texts[0] is not a string", e.Message);
        }
    }
}
