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
        var config = new Option<string?>("--config") { Description = "config file (TOML or JSON) with ddpo-pytorch's key names" };
        var preset = new Option<string?>("--preset") { Description = $"preset: {string.Join(", ", ConfigPresets.Names)}" };
        var model = new Option<string?>("--model") { Description = "diffusers pipeline folder (default: the built-in model)" };
        var set = new Option<string[]>("--set") { Description = "override a key, e.g. --set train.learning_rate=1e-4 (repeatable)", AllowMultipleArgumentsPerToken = false };
        var epochs = new Option<int?>("--epochs") { Description = "number of epochs (num_epochs)" };
        var runDir = new Option<string?>("--run-dir") { Description = "run folder (default: runs/<preset>-<time>)" };
        var resume = new Option<bool>("--resume") { Description = "continue the run in --run-dir from its newest checkpoint" };
        var common = new CommonOptions();
        var command = new Command("train", "Fine-tune a text-to-image model with DDPO (default: the built-in model on JPEG compressibility, on the CPU)")
        {
            config, preset, model, set, epochs, runDir, resume,
        };
        common.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var overrides = (parse.GetValue(set) ?? []).ToList();
            if (parse.GetValue(model) is { } m) overrides.Add($"model={Toml(m)}");
            if (parse.GetValue(epochs) is { } e) overrides.Add($"num_epochs={e}");
            var presetName = parse.GetValue(preset);
            var configFile = parse.GetValue(config);
            if (presetName is null && configFile is null) presetName = DefaultRun.Preset;
            var cfg = DdpoConfig.Load(configFile, presetName, overrides);
            if (cfg.Model == BuiltinModel.Name && !(presetName ?? "").Split('+').Contains(ConfigPresets.BuiltinLayer))
            {
                // The built-in model is small and pixel-space: size the task for it (file and --set still win).
                presetName = presetName is null ? ConfigPresets.BuiltinLayer : $"{presetName}+{ConfigPresets.BuiltinLayer}";
                cfg = DdpoConfig.Load(configFile, presetName, overrides);
            }
            var deviceText = parse.GetResult(common.Device) is { Implicit: false } ? parse.GetValue(common.Device) : cfg.Device;
            var (device, dtypeOption) = common.Resolve(parse, deviceText);
            var dtype = parse.GetResult(common.DType) is { Implicit: false } ? dtypeOption : TorchRuntime.ResolveDType(cfg.Pretrained.Dtype, device);
            bool resuming = parse.GetValue(resume);
            var dir = parse.GetValue(runDir);
            if (dir is null)
            {
                if (resuming) throw new ArgumentException("--resume needs --run-dir (the run to continue)");
                dir = Path.Combine("runs", $"{presetName ?? Path.GetFileNameWithoutExtension(configFile)}-{DateTime.Now:yyyyMMdd-HHmmss}");
            }
            using var pipeline = ModelResolver.LoadPipeline(cfg.Model, device, dtype);
            var observer = new ConsoleTrainingObserver();
            var reward = LearnedRewards.CreateForTraining(cfg, observer.Message);
            using var disposeReward = reward as IDisposable;
            using var trainer = new DdpoTrainer(cfg, pipeline, dir, resuming, reward, observer);
            AnsiConsole.MarkupLineInterpolated($"[bold]ddpo train[/]: {cfg.Algorithm.ToConfigName()} on '{pipeline.Source}' ({TorchRuntime.DTypeName(dtype)}{(trainer.Scaler.Enabled ? " with dynamic loss scaling" : "")}, {device}), reward {cfg.RewardFn}, prompts {cfg.PromptFn}, {cfg.SamplesPerEpoch} samples x {cfg.Sample.NumSteps} steps per epoch, epochs {trainer.StartEpoch}..{cfg.NumEpochs - 1}");
            AnsiConsole.MarkupLineInterpolated($"run folder: [green]{trainer.Run.Root}[/]");
            await observer.RunAsync(() => trainer.RunAsync(ct));
            AnsiConsole.MarkupLineInterpolated($"done: metrics in [green]{trainer.Run.MetricsFile}[/]");
            return 0;
        });
        return command;
    }

    private static string Toml(string text) => "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
