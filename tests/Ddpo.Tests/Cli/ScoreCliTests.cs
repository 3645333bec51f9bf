using System.Text.Json.Nodes;
using Ddpo.Cli;
using Ddpo.Imaging;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Tests.Rewards;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Cli;

/// <summary><c>ddpo score</c>: image files scored with registered rewards, weighted sums and server rewards.</summary>
[Collection("cli")]
public sealed class ScoreCliTests
{
    private static string[] WriteImages(string dir, int n, int size = 16)
    {
        var g = new Generator(11);
        return Enumerable.Range(0, n).Select(i =>
        {
            var path = Path.Combine(dir, $"image{i}.png");
            using var image = rand([3, size + i % 2, size], generator: g);
            ImageTensor.SavePng(image, path);
            return path;
        }).ToArray();
    }

    /// <summary>The expected reward of each file, scored in process one at a time.</summary>
    private static float[] Direct(IRewardFunction reward, string[] files, string prompt) => files.Select(f =>
    {
        using var image = ImageTensor.Load(f).unsqueeze(0);
        return reward.ScoreAsync(new RewardBatch(image, [prompt], [PromptSample.NoMetadata]), CancellationToken.None).GetAwaiter().GetResult().Rewards[0];
    }).ToArray();

    /// <summary>The height of the only image of a request (0 when there is not exactly one).</summary>
    private static int Height(JsonArray images)
    {
        if (images.Count != 1) return 0;
        using var bitmap = SkiaSharp.SKBitmap.Decode(Convert.FromBase64String(images[0]!.GetValue<string>()));
        return bitmap.Height;
    }

    private static (int Code, string Output) CaptureUnwrapped(Func<int> run)
    {
        var previous = Spectre.Console.AnsiConsole.Console;
        var writer = new StringWriter();
        Spectre.Console.AnsiConsole.Console = CliApp.UnwrappedConsole(writer);
        try
        {
            return (run(), writer.ToString());
        }
        finally
        {
            Spectre.Console.AnsiConsole.Console = previous;
        }
    }

    [Fact]
    public void ScoresFilesWithARegisteredRewardAsJson()
    {
        var dir = TestPaths.NewTempDir("score-cli");
        try
        {
            var files = WriteImages(dir, 3); // two sizes: scored in two batches
            var (code, output) = CliTests.Capture(() => CliApp.Run(["score", "--reward", "jpeg_compressibility", "--image", files[0],
                "--image", files[1], "--image", files[2], "--prompt", "a cat", "--json"]));
            Assert.True(code == 0, output);
            var doc = JsonNode.Parse(output)!;
            Assert.Equal("jpeg_compressibility", doc["reward_fn"]!.GetValue<string>());
            var expected = Direct(new JpegCompressibilityReward(), files, "a cat");
            var images = doc["images"]!.AsArray();
            Assert.Equal(3, images.Count);
            for (int i = 0; i < 3; i++)
            {
                Assert.Equal(files[i], images[i]!["image"]!.GetValue<string>());
                Assert.Equal("a cat", images[i]!["prompt"]!.GetValue<string>());
                Assert.Equal(expected[i], images[i]!["reward"]!.GetValue<double>(), 5);
            }
            Assert.Equal(expected.Average(v => (double)v), doc["mean"]!.GetValue<double>(), 5);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void AWeightedRewardPrintsEachComponent()
    {
        var dir = TestPaths.NewTempDir("score-cli");
        try
        {
            var files = WriteImages(dir, 2);
            string[] args = ["score", "--reward", "weighted", "--set", "rewards.brightness=1", "--set", "rewards.colorfulness=0.5",
                "--image", files[0], "--image", files[1], "--prompt", "one", "--prompt", "two"];
            var (code, output) = CliTests.Capture(() => CliApp.Run([.. args, "--json"]));
            Assert.True(code == 0, output);
            var images = JsonNode.Parse(output)!["images"]!.AsArray();
            var brightness = Direct(ImageStatisticReward.Brightness(), files, "x");
            var colorfulness = Direct(ImageStatisticReward.Colorfulness(), files, "x");
            for (int i = 0; i < 2; i++)
            {
                var details = images[i]!["details"]!;
                Assert.Equal(i == 0 ? "one" : "two", images[i]!["prompt"]!.GetValue<string>());
                Assert.Equal(brightness[i], details["brightness"]!.GetValue<double>(), 5);
                Assert.Equal(colorfulness[i], details["colorfulness"]!.GetValue<double>(), 4);
                Assert.Equal(brightness[i] + 0.5 * colorfulness[i], images[i]!["reward"]!.GetValue<double>(), 4);
            }

            // The table names each image and each component (on a console that does not wrap the long paths).
            (code, output) = CaptureUnwrapped(() => CliApp.Run(args));
            Assert.True(code == 0, output);
            Assert.Contains("image0.png", output);
            Assert.Contains("colorfulness", output);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void ServerRewardsAndBadInputGiveClearMessages()
    {
        var dir = TestPaths.NewTempDir("score-cli");
        try
        {
            var files = WriteImages(dir, 2);
            using var server = LocalHttpServer.Answering((r, _) =>
                // The two images differ in size (16 and 17 rows): one request each; the OCR "reads" by height.
                r.Path != "/ocr" ? (404, "no route") : (200, Height(JsonNode.Parse(r.Body)!["images"]!.AsArray()) == 16
                    ? "{\"texts\": [\"Gone Fishing\"]}" : "{\"texts\": [\"Gone Fishin\"]}"));
            string[] ocr = ["score", "--reward", "ocr", "--set", $"reward.ocr.base_url={server.BaseUrl}", "--set", "reward.ocr.backoff_s=0.01",
                "--image", files[0], "--image", files[1]];
            var (code, output) = CliTests.Capture(() => CliApp.Run([.. ocr, "--prompt", "a sign that says \"Gone Fishing\"", "--json"]));
            Assert.True(code == 0, output);
            var images = JsonNode.Parse(output)!["images"]!.AsArray();
            Assert.Equal(1.0, images[0]!["reward"]!.GetValue<double>(), 6);
            Assert.Equal(1.0 - 1.0 / 11, images[1]!["reward"]!.GetValue<double>(), 6);
            Assert.Equal(1.0, images[1]!["details"]!["edit_distance"]!.GetValue<double>());

            // No quoted text: refused before any request, naming the prompt.
            int requests = server.Requests.Count;
            (code, output) = CliTests.Capture(() => CliApp.Run([.. ocr, "--prompt", "a sign on a beach"]));
            Assert.Equal(CliApp.BadInput, code);
            Assert.Contains("'a sign on a beach'", output);
            Assert.Equal(requests, server.Requests.Count);

            (code, output) = CliTests.Capture(() => CliApp.Run([.. ocr, "--prompt", "\"a\"", "--prompt", "\"b\"", "--prompt", "\"c\""]));
            Assert.Equal(CliApp.BadInput, code);
            Assert.Contains("3 prompts for 2 images", output);

            (code, output) = CliTests.Capture(() => CliApp.Run(["score", "--reward", "no_such_reward", "--image", files[0], "--prompt", "x"]));
            Assert.Equal(CliApp.BadInput, code);
            Assert.Contains("unknown reward 'no_such_reward'", output);
            Assert.Contains("ocr", output); // the registered names are listed

            // A server that is down: exit code 3 and the URL.
            var down = $"http://127.0.0.1:{LocalHttpServer.FreePort()}";
            (code, output) = CliTests.Capture(() => CliApp.Run(["score", "--reward", "geneval", "--set", $"reward.geneval.base_url={down}",
                "--set", "reward.geneval.max_retries=0", "--image", files[0], "--prompt", "a photo of a cat",
                "--metadata", "{\"tag\": \"single_object\", \"include\": [{\"class\": \"cat\", \"count\": 1}]}"]));
            Assert.Equal(CliApp.RewardFailed, code);
            Assert.Contains(down, output);

            (code, output) = CliTests.Capture(() => CliApp.Run(["score", "--reward", "geneval", "--image", files[0], "--prompt", "a cat", "--metadata", "{\"tag\": "]));
            Assert.Equal(CliApp.BadInput, code);
            Assert.Contains("--metadata", output);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
