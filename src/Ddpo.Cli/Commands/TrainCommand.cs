using System.CommandLine;
using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runtime;
using Ddpo.Training;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo train</c>: DDPO fine-tuning with progress bars, metrics, images and checkpoints.</summary>
public static class TrainCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var configOptions = new RunConfigOptions();
        var epochs = new Option<int?>("--epochs") { Description = "number of epochs (num_epochs)" };
        var runDir = new Option<string?>("--run-dir") { Description = "run folder (default: runs/<preset>-<time>)" };
        var resume = new Option<bool>("--resume") { Description = "continue the run in --run-dir from its newest checkpoint" };
        var common = new CommonOptions();
        var command = new Command("train", "Fine-tune a text-to-image model with DDPO (default: the built-in model on JPEG compressibility, on the CPU)")
        {
            epochs, runDir, resume,
        };
        configOptions.AddTo(command);
        common.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            // Under mpirun / srun: one process per device, the epoch shared among them (MPI; see docs/distributed.md).
            var group = Ddpo.Distributed.ProcessGroups.FromEnvironment();
            var (cfg, presetName) = configOptions.Load(parse, parse.GetValue(epochs) is { } e ? [$"num_epochs={e}"] : null, group.Size);
            var deviceText = parse.GetResult(common.Device) is { Implicit: false } ? parse.GetValue(common.Device) : cfg.Device;
            var (anyDevice, dtypeOption) = common.Resolve(parse, deviceText);
            var device = Ddpo.Distributed.ProcessGroups.DeviceForRank(anyDevice, group);
            var dtype = parse.GetResult(common.DType) is { Implicit: false } ? dtypeOption : TorchRuntime.ResolveDType(cfg.Pretrained.Dtype, device);
            bool resuming = parse.GetValue(resume);
            var dir = parse.GetValue(runDir);
            if (dir is null)
            {
                if (resuming) throw new ArgumentException("--resume needs --run-dir (the run to continue)");
                dir = Path.Combine("runs", $"{presetName ?? Path.GetFileNameWithoutExtension(configOptions.ConfigFile(parse))}-{DateTime.Now:yyyyMMdd-HHmmss}");
            }
            using var pipeline = ModelResolver.LoadPipeline(cfg.Model, device, dtype);
            // Rank 0 shows the progress; the other ranks' consoles would only repeat it.
            var observer = new ConsoleTrainingObserver();
            if (group.Rank != 0) observer.Quiet();
            var reward = LearnedRewards.CreateForTraining(cfg, observer.Message);
            using var disposeReward = reward as IDisposable;
            using var trainer = new DdpoTrainer(cfg, pipeline, dir, resuming, reward, observer, group);
            if (group.Rank == 0)
            {
                AnsiConsole.MarkupLineInterpolated($"[bold]ddpo train[/]: {cfg.Algorithm.ToConfigName()} on '{pipeline.Source}' ({TorchRuntime.DTypeName(dtype)}{(trainer.Scaler.Enabled ? " with dynamic loss scaling" : "")}, {device}), reward {cfg.RewardFn}, prompts {cfg.PromptFn}, {cfg.Counts.SamplesPerEpoch} samples x {cfg.Sample.NumSteps} steps per epoch, epochs {trainer.StartEpoch}..{cfg.NumEpochs - 1}");
                AnsiConsole.MarkupLineInterpolated($"[grey]{cfg.Counts.Summary()}[/]");
                AnsiConsole.MarkupLineInterpolated($"run folder: [green]{trainer.Run.Root}[/]");
                if (group.Size > 1) AnsiConsole.MarkupLineInterpolated($"{group.Size} processes ({group.Description}), this one on {group.Host}");
            }
            await observer.RunAsync(() => trainer.RunAsync(ct));
            if (group.Rank == 0) AnsiConsole.MarkupLineInterpolated($"done: metrics in [green]{trainer.Run.MetricsFile}[/]");
            return 0;
        });
        return command;
    }
}
