using System.Text.Json;
using Ddpo.Cli;
using Ddpo.Runs;
using Ddpo.Tests.Rewards;
using Ddpo.Tests.Support;
using Ddpo.Training;
using Xunit;

namespace Ddpo.Tests.Cli;

/// <summary><c>vlm_strict_satisfaction</c> from the command line: questions and answers from a JSONL prompt file reach the reward in training and in eval.</summary>
[Collection("cli")]
public sealed class StrictSatisfactionCliTests
{
    [Fact]
    public void TrainAndEvalScoreJsonlQuestionsAgainstAVlmServer()
    {
        using var server = LocalHttpServer.Answering((r, _) => FakeVlm.Handle(r));
        var root = TestPaths.NewTempDir();
        var prompts = Path.Combine(root, "qa.jsonl");
        File.WriteAllLines(prompts,
        [
            """{"prompt": "a cat riding a bike", "questions": ["What animal is in the image?", "Is it riding a bike?"], "answers": ["cat", "yes"]}""",
            """{"prompt": "a dog riding a bike", "questions": ["Is it riding a bike?"], "answers": ["yes"]}""",
        ]);
        string[] Train(string run, string promptFn) =>
        [
            "train", "--model", TinyModels.Pixel, "--run-dir", run, "--epochs", "1",
            "--set", "reward_fn=vlm_strict_satisfaction", "--set", $"reward.vlm.base_url={server.BaseUrl}/v1",
            "--set", "reward.vlm.model=fake-llava", "--set", "reward.vlm.backoff_s=0.01", "--set", $"prompt_fn={promptFn}",
            "--set", "sample.num_steps=2", "--set", "sample.batch_size=2", "--set", "sample.num_batches_per_epoch=1",
            "--set", "train.batch_size=2", "--set", "train.gradient_accumulation_steps=1", "--set", "pretrained.dtype=fp32",
            "--set", "logging.num_eval_images=0", "--set", "save_freq=1", "--device", "cpu",
        ];

        // Prompts without questions are refused before anything is sampled.
        var (code, output) = CliTests.Capture(() => CliApp.Run(Train(Path.Combine(root, "bad"), "animals")));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("file:PATH.jsonl", output);
        Assert.Empty(server.Requests);

        var run = Path.Combine(root, "run");
        Assert.Equal(0, CliApp.Run(Train(run, "file:" + prompts)));
        var line = Assert.Single(MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl")));
        Assert.Equal(0.0, (double)line["nonfinite_rewards"]!);
        Assert.InRange((double)line["reward_mean"]!, 0.5, 1.0); // "Is it riding a bike?" is always answered yes
        Assert.Equal(0.0, (double)line["reward_invalid_metadata_mean"]!);
        int trainingRequests = server.Requests.Count;
        Assert.InRange(trainingRequests, 2, 4); // one question per image and question

        Assert.Equal(0, CliApp.Run(["eval", "--run", run, "--prompts", "train", "--seeds", "1", "--device", "cpu"]));
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "eval", "eval-epoch-0000.json"))))
        {
            var result = Assert.Single(doc.RootElement.GetProperty("results").EnumerateArray());
            Assert.Equal("vlm_strict_satisfaction", result.GetProperty("reward").GetString());
            Assert.Equal(2, result.GetProperty("n").GetInt32()); // both prompts scored: their questions reached the reward
            Assert.InRange(result.GetProperty("base_mean").GetDouble(), 0.5, 1.0);
            Assert.InRange(result.GetProperty("finetuned_mean").GetDouble(), 0.5, 1.0);
        }
        // Base and fine-tuned: 2 images each, 3 questions per pair of prompts.
        Assert.Equal(trainingRequests + 2 * 3, server.Requests.Count);
        Directory.Delete(root, true);
    }
}
