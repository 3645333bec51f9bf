using Ddpo.Training;
using System.CommandLine;
using Ddpo.Config;
using Ddpo.Reporting;
using Ddpo.Runtime;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo train</c>: DDPO fine-tuning with progress bars, metrics, images and checkpoints.</summary>
internal static class TrainCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var configOptions = new RunConfigOptions();
        var epochs = new Option<int?>("--epochs") { Description = "number of epochs (num_epochs)" };
        var runDir = new Option<string?>("--run-dir") { Description = "run folder (default: runs/<preset>-<time>)" };
        var resume = new Option<bool>("--resume") { Description = "continue the run in --run-dir from its newest checkpoint" };
        var skipCheck = new Option<bool>("--skip-gradient-check") { Description = "do not check float32 gradients against float64 before training (ddpo doctor runs the check)" };
        var common = new CommonOptions();
        var command = new Command("train", "Fine-tune a text-to-image model with DDPO (default: the built-in model on JPEG compressibility, on the CPU)")
        {
            epochs, runDir, resume, skipCheck,
        };
        configOptions.AddTo(command);
        common.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            bool resuming = parse.GetValue(resume);
            var dir = parse.GetValue(runDir);
            if (dir is null && resuming) throw new ArgumentException("--resume needs --run-dir (the run to continue)");
            common.ApplyRuntime(parse);
            // Under mpirun / srun: one process per device, the epoch shared among them (MPI; see docs/distributed.md).
            var group = Ddpo.Distributed.ProcessGroups.FromEnvironment();
            var observer = new ConsoleTrainingObserver();
            // Rank 0 shows the progress; the other ranks' consoles would only repeat it.
            if (group.Rank != 0) observer.Quiet();
            var options = configOptions.ToTrainingOptions(parse);
            options.Epochs = parse.GetValue(epochs);
            options.Device = common.ExplicitDevice(parse);
            options.DType = common.ExplicitDType(parse);
            options.RunDirectory = dir;
            options.Resume = resuming;
            options.CheckGradients = !parse.GetValue(skipCheck);
            options.ProcessGroup = group;
            options.Observers.Add(observer);
            options.Outputs = RunOutputs.All.WithReports();
            using var run = DdpoRun.Create(options);
            var (cfg, trainer) = (run.Config, run.Trainer);
            if (group.Rank == 0)
            {
                AnsiConsole.MarkupLineInterpolated($"[bold]ddpo train[/]: {cfg.Algorithm.ToConfigName()} on '{run.Pipeline.Source}' ({TorchRuntime.DTypeName(run.DType)}{(trainer.Scaler.Enabled ? " with dynamic loss scaling" : "")}, {run.Device}), reward {cfg.RewardFn}, prompts {cfg.PromptFn}, {cfg.Counts.SamplesPerEpoch} samples x {cfg.Sample.NumSteps} steps per epoch, epochs {trainer.StartEpoch}..{cfg.NumEpochs - 1}");
                AnsiConsole.MarkupLineInterpolated($"[grey]{cfg.Counts.Summary()}[/]");
                AnsiConsole.MarkupLineInterpolated($"run folder: [green]{trainer.Run.Root}[/]");
                if (group.Size > 1) AnsiConsole.MarkupLineInterpolated($"{group.Size} processes ({group.Description}), this one on {group.Host}");
            }
            await observer.RunAsync(() => run.RunAsync(ct));
            if (group.Rank == 0) AnsiConsole.MarkupLineInterpolated($"done: metrics in [green]{trainer.Run.MetricsFile}[/]");
            return 0;
        });
        return command;
    }
}
