using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Training;

namespace Ddpo.Tests.Support;

/// <summary>Short training runs on the tiny pixel pipeline: a 2-epoch, 3-step config and a run that returns its metrics.</summary>
internal static class TinyTraining
{
    /// <summary>The compressibility preset sized to one batch of 4 and 3 steps, 2 epochs, a checkpoint every epoch; <paramref name="extra"/> overrides.</summary>
    public static DdpoConfig Config(params string[] extra) => DdpoConfig.Load(null, "compressibility",
    [
        "prompt_fn=\"simple_animals\"", "sample.num_steps=3", "sample.batch_size=4", "sample.num_batches_per_epoch=1",
        "train.batch_size=4", "train.gradient_accumulation_steps=1", "num_epochs=2", "pretrained.dtype=\"fp32\"",
        "logging.num_eval_images=2", "save_freq=1", "device=\"cpu\"", .. extra,
    ]);

    /// <summary>Trains <paramref name="config"/> in <paramref name="runDir"/> (the tiny pixel model unless <paramref name="model"/>) and returns metrics.jsonl.</summary>
    public static List<EpochMetrics> Train(DdpoConfig config, string runDir, bool resume = false,
        IRewardFunction? reward = null, ITrainingObserver? observer = null, string? model = null)
    {
        using var pipeline = TextToImagePipeline.FromPretrained(model ?? TinyModels.Pixel);
        using var trainer = new DdpoTrainer(config, pipeline.Policy, runDir, resume, reward ?? RewardFactory.CreateForTraining(config), observer);
        trainer.RunAsync().GetAwaiter().GetResult();
        return MetricsLog.ReadAll(Path.Combine(runDir, "metrics.jsonl")).ToList();
    }
}
