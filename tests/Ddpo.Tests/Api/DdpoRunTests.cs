using Ddpo.Base;
using Ddpo.Cli;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Tests.Cli;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;

namespace Ddpo.Tests.Api;

/// <summary>The front door: a run set up from C# objects, recorded in config.toml as it ran.</summary>
[Collection("cli")]
public sealed class DdpoRunTests
{
    private static readonly string[] TinySizes =
    [
        "sample.num_steps=3", "sample.batch_size=4", "sample.num_batches_per_epoch=1", "train.batch_size=4",
        "train.gradient_accumulation_steps=1", "logging.num_eval_images=2", "save_freq=1",
    ];

    [Fact]
    public void TheLibraryAppliesTheBuiltinSizingLayer()
    {
        var (builtin, preset) = DdpoRun.ResolveConfig(new DdpoTrainingOptions());
        Assert.Equal("compressibility+builtin", preset);
        Assert.Equal(12, builtin.NumEpochs);
        Assert.Equal(10, builtin.Sample.NumSteps);
        Assert.Equal("animals_train", builtin.PromptFn);

        // A model folder gets the preset's (paper) sizes; typed edits and --set-style overrides come last.
        var (folder, folderPreset) = DdpoRun.ResolveConfig(new DdpoTrainingOptions
        {
            Model = TinyModels.Pixel, Set = ["sample.num_steps=7"], Configure = c => c.Seed = 5,
        });
        Assert.Equal("compressibility", folderPreset);
        Assert.Equal(100, folder.NumEpochs);
        Assert.Equal(7, folder.Sample.NumSteps);
        Assert.Equal(5, folder.Seed);

        var both = Assert.Throws<ArgumentException>(() => DdpoRun.ResolveConfig(new DdpoTrainingOptions { Config = new DdpoConfig(), Preset = "aesthetic" }));
        Assert.Contains("Config", both.Message);
        var bad = Assert.Throws<ConfigException>(() => DdpoRun.ResolveConfig(new DdpoTrainingOptions { Set = ["sample.num_steps=0"] }));
        Assert.Contains("sample.num_steps", bad.Message);
    }

    [Fact]
    public async Task ACSharpRewardOnAPromptListTrainsAndIsRecordedAsRun()
    {
        var dir = Path.Combine(TestPaths.NewTempDir(), "run");
        string[] prompts = ["a cat", "a dog", "a frog"];
        var seen = new List<string>();
        var epochs = new List<EpochMetrics>();
        var options = new DdpoTrainingOptions
        {
            Model = TinyModels.Pixel,
            Epochs = 1,
            Set = [.. TinySizes],
            PromptList = prompts,
            Reward = DelegateReward.PerImage("brightness", (image, prompt, _) =>
            {
                lock (seen) seen.Add(prompt);
                return image.mean().ToSingle();
            }),
            Device = "cpu",
            RunDirectory = dir,
            Outputs = RunOutputs.Minimal with { Checkpoints = true },
            OnEpoch = epochs.Add,
        };
        using (var run = DdpoRun.Create(options))
        {
            await run.RunAsync();
            Assert.True(File.Exists(run.WeightsFile));
        }

        // Typed metrics reach the observer and equal the metrics.jsonl line.
        var line = Assert.Single(MetricsLog.ReadAll(Path.Combine(dir, "metrics.jsonl")));
        var typed = Assert.Single(epochs);
        Assert.Equal(0, typed.Epoch);
        Assert.Equal(line.RewardMean, typed.RewardMean, 12);
        Assert.InRange(typed.RewardMean, 0.0, 1.0); // a mean pixel value
        Assert.Equal(4, typed.Samples);
        Assert.Equal(4, seen.Count);
        Assert.All(seen, p => Assert.Contains(p, prompts));

        // Only what was asked for is written.
        Assert.False(File.Exists(Path.Combine(dir, "report.html")));
        Assert.False(Directory.Exists(Path.Combine(dir, "tensorboard")));
        Assert.Empty(Directory.GetDirectories(Path.Combine(dir, "images")));
        Assert.NotEmpty(Directory.GetDirectories(Path.Combine(dir, "checkpoints")));

        // config.toml records what ran: the model, device and dtype used, the prompt list (rebuildable) and the reward by name (not).
        var recorded = DdpoConfig.Load(Path.Combine(dir, "config.toml"), null, []);
        Assert.Equal(TinyModels.Pixel, recorded.Model);
        Assert.Equal("cpu", recorded.Device);
        Assert.Equal("fp32", recorded.Pretrained.Dtype);
        Assert.Equal("code:brightness", recorded.RewardFn);
        Assert.Equal(prompts, PromptSources.Create(recorded.PromptFn).All);

        // ddpo eval says why it cannot rebuild the reward, and works with a registered one on the recorded prompts.
        var (code, output) = CliTests.Capture(() => CliApp.Run(["eval", "--run", dir, "--seeds", "1", "--prompts", "train", "--device", "cpu"]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("reward_fn: 'code:brightness' was an object given in C# code", output.Replace("\n", ""));
        Assert.Equal(0, CliApp.Run(["eval", "--run", dir, "--seeds", "1", "--prompts", "train", "--reward", "image_contrast", "--device", "cpu"]));
        Assert.True(File.Exists(Path.Combine(dir, "eval", "eval-epoch-0000.json")));

        // An existing run is never touched without Resume: the recorded prompt list stays as it was.
        options.PromptList = ["a fish"];
        var exists = Assert.Throws<ArgumentException>(() => DdpoRun.Create(options));
        Assert.Contains("already has metrics.jsonl", exists.Message);
        Assert.Equal(prompts, PromptSources.Create(recorded.PromptFn).All);
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public void APromptSourceObjectIsRecordedByNameAndNotRebuilt()
    {
        var dir = TestPaths.NewTempDir();
        var options = new DdpoTrainingOptions
        {
            Model = TinyModels.Pixel, Set = [.. TinySizes], Device = "cpu", RunDirectory = dir,
            Prompts = new ListPromptSource(["a cat"]), WatchRewards = [new DelegateReward("red", b => new float[b.Count])],
        };
        using (var run = DdpoRun.Create(options))
        {
            Assert.Equal("jpeg_compressibility", run.Reward.Name);
        }
        var recorded = DdpoConfig.Load(Path.Combine(dir, "config.toml"), null, []);
        Assert.Equal("code:ListPromptSource", recorded.PromptFn);
        Assert.Equal("code:red", recorded.WatchRewards);
        var e = Assert.Throws<ConfigException>(() => PromptSources.Create(recorded.PromptFn));
        Assert.Contains("prompt_fn: 'code:ListPromptSource' was an object given in C# code", e.Message);
        Assert.Throws<ConfigException>(() => RewardFactory.CreateForTraining(recorded));
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task ADelegateRewardMustGiveOneRewardPerImage()
    {
        using var images = torch.zeros(2, 3, 4, 4);
        var batch = new RewardBatch(images, ["a", "b"], [PromptSample.NoMetadata, PromptSample.NoMetadata]);
        var wrong = new DelegateReward("short", b => new float[1]);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => wrong.ScoreAsync(batch, CancellationToken.None));
        Assert.Contains("'short' returned 1 rewards for 2 images", e.Message);
        var async = new DelegateReward("async", async (b, ct) => { await Task.Yield(); return b.Prompts.Select(p => (float)p.Length).ToArray(); });
        var result = await async.ScoreAsync(batch, CancellationToken.None);
        Assert.Equal(new[] { 1f, 1f }, result.Rewards);
    }
}
