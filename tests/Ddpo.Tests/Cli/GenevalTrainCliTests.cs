using System.Text.Json.Nodes;
using Ddpo.Cli;
using Ddpo.Runs;
using Ddpo.Tests.Rewards;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Cli;

/// <summary><c>geneval</c> in training: each GenEval <c>.jsonl</c> record reaches the reward server as the JSON it was.</summary>
[Collection("cli")]
public sealed class GenevalTrainCliTests
{
    [Fact]
    public void TrainingSendsEachPromptsRecord()
    {
        var seen = new List<JsonObject>();
        using var server = LocalHttpServer.Answering((r, _) => GenevalRewardTests.GenevalServer(r, seen));
        var root = TestPaths.NewTempDir("geneval-train");
        try
        {
            var prompts = Path.Combine(TestPaths.RepoRoot, "examples", "prompts", "geneval_example.jsonl");
            string[] Train(string run, string promptFn) =>
            [
                "train", "--model", TinyModels.Pixel, "--run-dir", run, "--epochs", "1",
                "--set", "reward_fn=geneval", "--set", $"reward.geneval.base_url={server.BaseUrl}", "--set", "reward.geneval.backoff_s=0.01",
                "--set", $"prompt_fn={promptFn}", "--set", "sample.num_steps=2", "--set", "sample.batch_size=2",
                "--set", "sample.num_batches_per_epoch=1", "--set", "train.batch_size=2", "--set", "train.gradient_accumulation_steps=1",
                "--set", "pretrained.dtype=fp32", "--set", "logging.num_eval_images=0", "--set", "save_freq=1", "--device", "cpu",
            ];

            // Prompts without GenEval metadata are refused before anything is sampled.
            var (code, output) = CliTests.Capture(() => CliApp.Run(Train(Path.Combine(root, "bad"), "animals")));
            Assert.Equal(CliApp.BadInput, code);
            Assert.Contains("\"tag\"", output);
            Assert.Empty(server.Requests);

            var run = Path.Combine(root, "run");
            (code, output) = CliTests.Capture(() => CliApp.Run(Train(run, "file:" + prompts)));
            Assert.True(code == 0, output);
            Assert.Equal(2, seen.Count);
            var lines = File.ReadAllLines(prompts).Select(l => JsonNode.Parse(l)!).ToList();
            foreach (var record in seen)
            {
                // The record as the file held it: include's counts are numbers, the prompt is there.
                Assert.Contains(lines, l => JsonNode.DeepEquals(l, record));
            }
            var line = Assert.Single(MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl")));
            Assert.Equal(0.0, (double)line["nonfinite_rewards"]!);
            Assert.InRange((double)line["reward_mean"]!, 0.25, 0.75); // scores = include count / 4
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }
}
