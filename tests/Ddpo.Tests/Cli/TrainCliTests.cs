using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ddpo.Cli;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Runs;
using Ddpo.Tests.Rewards;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;

namespace Ddpo.Tests.Cli;

[Collection("cli")]
public sealed class TrainCliTests
{
    private static string[] TrainArgs(string runDir, int epochs) =>
    [
        "train", "--preset", "compressibility", "--model", TinyModels.Pixel, "--run-dir", runDir, "--epochs", epochs.ToString(),
        "--set", "prompt_fn=animals_train", "--set", "sample.num_steps=3", "--set", "sample.batch_size=4",
        "--set", "sample.num_batches_per_epoch=1", "--set", "train.batch_size=4", "--set", "train.gradient_accumulation_steps=1",
        "--set", "pretrained.dtype=fp32", "--set", "logging.num_eval_images=2", "--set", "save_freq=1", "--device", "cpu",
    ];

    [Fact]
    public void TrainResumeEvalReportAndExportWorkFromTheCommandLine()
    {
        var root = TestPaths.NewTempDir();
        var run = Path.Combine(root, "run");
        Assert.Equal(0, CliApp.Run(TrainArgs(run, 1)));
        Assert.Single(MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl")));
        Assert.True(File.Exists(Path.Combine(run, "report.html")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(run, "tensorboard")));

        // Without --resume an existing run is not overwritten; with it, the remaining epochs run.
        var (code, output) = CliTests.Capture(() => CliApp.Run(TrainArgs(run, 2)));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("--resume", output);
        Assert.Equal(0, CliApp.Run([.. TrainArgs(run, 2), "--resume"]));
        Assert.Equal([0.0, 1.0], MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl")).Select(m => (double)m.Epoch).ToArray());

        Assert.Equal(0, CliApp.Run(["eval", "--run", run, "--seeds", "1", "--device", "cpu"]));
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "eval", "eval-epoch-0001.json"))))
        {
            var sets = doc.RootElement.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("prompts").GetString()!).ToArray();
            Assert.Equal(new[] { "train", "held-out" }, sets);
            Assert.Equal(9, doc.RootElement.GetProperty("prompt_sets").GetProperty("held-out").GetArrayLength());
        }

        // Any prompt set by name, e.g. the paper's everyday objects (--max-prompts: 5 of the 50, evenly spaced).
        Assert.Equal(0, CliApp.Run(["eval", "--run", run, "--seeds", "1", "--prompts", "everyday_objects", "--max-prompts", "5", "--device", "cpu"]));
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "eval", "eval-epoch-0001.json"))))
        {
            var result = Assert.Single(doc.RootElement.GetProperty("results").EnumerateArray());
            Assert.Equal("everyday_objects", result.GetProperty("prompts").GetString());
            Assert.Equal(5, result.GetProperty("n").GetInt32());
            Assert.True(double.IsFinite(result.GetProperty("base_mean").GetDouble()));
            Assert.True(double.IsFinite(result.GetProperty("finetuned_mean").GetDouble()));
            var objects = doc.RootElement.GetProperty("prompt_sets").GetProperty("everyday_objects").EnumerateArray().Select(p => p.GetString()!).ToArray();
            Assert.Equal(["a toaster", "a bicycle", "an oven", "a wallet", "a ruler"], objects);
        }
        var (unknown, unknownOutput) = CliTests.Capture(() => CliApp.Run(["eval", "--run", run, "--prompts", "kitchenware", "--device", "cpu"]));
        Assert.Equal(CliApp.BadInput, unknown);
        Assert.Contains("kitchenware", unknownOutput);

        File.Delete(Path.Combine(run, "report.html"));
        Assert.Equal(0, CliApp.Run(["report", run]));
        Assert.True(File.Exists(Path.Combine(run, "report.html")));

        var merged = Path.Combine(root, "merged");
        Assert.Equal(0, CliApp.Run(["export", "--model", TinyModels.Pixel, "--lora", Path.Combine(run, "lora.safetensors"), "--out", merged]));
        using var withLora = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        var adapters = Ddpo.Models.Lora.LoraAdapters.Load(withLora.Unet, Path.Combine(run, "lora.safetensors"));
        using var exported = TextToImagePipeline.FromPretrained(merged);
        var options = new SamplingOptions { NumSteps = 3 };
        using var a = withLora.Sample(["a cat"], options, new torch.Generator(3));
        using var b = exported.Sample(["a cat"], options, new torch.Generator(3));
        TensorAssert.Close(a.Images, b.Images, atol: 1e-4, what: "merged export vs LoRA adapters");
        adapters.Detach();
        Directory.Delete(root, true);
    }

    /// <summary>
    /// <c>ddpo train</c> with its output redirected (as to a log file) and an assumed width of 80 columns: every epoch
    /// line holds its whole record, the header and the run folder are one line each, and there are no progress bars. The
    /// reward server gives every image the same reward, so each epoch's rewards have zero spread: a warning line says
    /// so and metrics.jsonl marks the epoch <c>reward_collapsed</c>.
    /// </summary>
    [Fact]
    public async Task RedirectedOutputIsOneLinePerEpochAndACollapsedRewardIsWarnedAbout()
    {
        using var server = LocalHttpServer.Answering((request, _) =>
        {
            var images = JsonNode.Parse(request.Body)!["images"]!.AsArray();
            return (200, new JsonObject { ["rewards"] = new JsonArray(images.Select(_ => (JsonNode)JsonValue.Create(1.0)).ToArray()) }.ToJsonString());
        });
        var root = TestPaths.NewTempDir();
        var run = Path.Combine(root, "a-run-folder-whose-name-alone-is-longer-than-the-eighty-columns-a-console-is-assumed-to-have");
        var (code, output) = await CliProcess.RunAsync(1,
            [.. TrainArgs(run, 2), "--set", "reward_fn=\"remote\"", "--set", $"reward.server.base_url=\"{server.BaseUrl}\""],
            TimeSpan.FromMinutes(5), new Dictionary<string, string> { ["COLUMNS"] = "80" });
        Assert.True(code == 0, output);
        var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();

        var epochLines = lines.Where(l => l.StartsWith("epoch ", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, epochLines.Length);
        for (int e = 0; e < 2; e++)
        {
            Assert.Matches($@"^epoch +{e}  reward \S+ ± \S+  kl \S+  clipfrac \S+  loss \S+  sample \S+s  reward \S+s  train \S+s$", epochLines[e]);
            Assert.True(epochLines[e].Length > 80, epochLines[e]);
        }
        var warnings = lines.Where(l => l.StartsWith("warning:", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, warnings.Length);
        for (int e = 0; e < 2; e++)
        {
            Assert.Matches($@"^warning: epoch {e}: all 4 rewards are 1 \(zero spread\): the policy has likely collapsed and produces identical images, .*lower train\.learning_rate or use the KL penalty \(train\.kl_coef > 0\)$", warnings[e]);
        }
        Assert.Single(lines, l => l.StartsWith("ddpo train: ", StringComparison.Ordinal) && l.EndsWith("epochs 0..1", StringComparison.Ordinal));
        Assert.Single(lines, l => l == $"run folder: {run}");
        Assert.Single(lines, l => l == $"done: metrics in {Path.Combine(run, "metrics.jsonl")}");
        // No progress bars (Spectre's fallback would print "epoch 0: sampling ... 25%" lines) and no escape codes.
        Assert.DoesNotContain(lines, l => l.Contains('%') || l.Contains('\u001b'));
        Assert.All(MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl")), m => Assert.Equal(true, m.RewardCollapsed));
        Directory.Delete(root, true);
    }
}
