using System.Text.Json.Nodes;
using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Tests.Rewards;
using Ddpo.Tests.Support;
using Ddpo.Training;
using Xunit;

namespace Ddpo.Tests.Training;

[Collection("training")]
public sealed class RewardServerResumeTests
{
    /// <summary>A reward server on 127.0.0.1: reward = kB of the base64 PNG, so it depends on the image.</summary>
    private static LocalHttpServer RewardServer(Func<bool> up) => LocalHttpServer.Answering((request, _) =>
    {
        if (!up()) return (503, "{\"error\":\"server is down for maintenance\"}");
        var images = JsonNode.Parse(request.Body)!["images"]!.AsArray();
        var rewards = new JsonArray(images.Select(i => (JsonNode)JsonValue.Create(i!.GetValue<string>().Length / 1000.0)).ToArray());
        return (200, new JsonObject { ["rewards"] = rewards }.ToJsonString());
    });

    private static DdpoConfig Config(string url) => DdpoConfig.Load(null, "compressibility",
    [
        "prompt_fn=\"animals\"", "sample.num_steps=3", "sample.batch_size=4", "sample.num_batches_per_epoch=1",
        "train.batch_size=4", "train.gradient_accumulation_steps=1", "num_epochs=3", "pretrained.dtype=\"fp32\"",
        "logging.num_eval_images=0", "save_freq=10", "device=\"cpu\"", "reward_fn=\"remote\"",
        $"reward.server.base_url=\"{url}\"", "reward.server.max_retries=1", "reward.server.backoff_s=0.01",
    ]);

    private static void Train(DdpoConfig config, string runDir, bool resume)
    {
        using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        var reward = RewardFactory.CreateRegistry(config).Create(config.RewardFn, config.Rewards);
        using var trainer = new DdpoTrainer(config, pipeline.Policy, runDir, resume, reward);
        trainer.RunAsync().GetAwaiter().GetResult();
    }

    [Fact]
    public void ServerDownMidRunFailsClearlyKeepsTheSamplesAndResumeFinishesLikeAnUninterruptedRun()
    {
        bool up = true;
        using var server = RewardServer(() => up);
        var config = Config(server.BaseUrl);
        var reference = TestPaths.NewTempDir();
        Train(config, reference, resume: false);
        Assert.Equal(3, server.Requests.Count);

        // Second run: the first epoch is scored, then the server goes down (503 after the retries).
        var run = TestPaths.NewTempDir();
        var thrown = Assert.Throws<RewardFailedException>(() =>
        {
            using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
            var reward = RewardFactory.CreateRegistry(config).Create(config.RewardFn, config.Rewards);
            using var trainer = new DdpoTrainer(config, pipeline.Policy, run, false, new DownAfterFirstCall(reward, () => up = false));
            trainer.RunAsync().GetAwaiter().GetResult();
        });
        Assert.Contains(server.BaseUrl, thrown.Message);
        Assert.Contains("--resume", thrown.Message);
        Assert.Equal(1, thrown.Epoch);
        Assert.True(Directory.Exists(Path.Combine(run, "pending", "epoch-000001")), "the failed epoch's samples are kept");
        Assert.True(Directory.Exists(Path.Combine(run, "checkpoints", "epoch-000000")), "the weights before the failed epoch are checkpointed");

        up = true;
        Train(config, run, resume: true);
        Assert.False(Directory.Exists(Path.Combine(run, "pending", "epoch-000001")));
        var expected = MetricsLog.ReadAll(Path.Combine(reference, "metrics.jsonl"));
        var resumed = MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(3, resumed.Count);
        for (int e = 0; e < 3; e++)
        {
            Assert.Equal((double)expected[e]["reward_mean"]!, (double)resumed[e]["reward_mean"]!, 9);
            Assert.Equal((double)expected[e]["loss"]!, (double)resumed[e]["loss"]!, 9);
        }
        Directory.Delete(reference, true);
        Directory.Delete(run, true);
    }

    /// <summary>Lets the first epoch's request through, then takes the server down.</summary>
    private sealed class DownAfterFirstCall(IRewardFunction inner, Action goDown) : IRewardFunction
    {
        private int _calls;
        public string Name => inner.Name;

        public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
        {
            if (Interlocked.Increment(ref _calls) == 2) goDown();
            return await inner.ScoreAsync(batch, ct);
        }
    }
}
