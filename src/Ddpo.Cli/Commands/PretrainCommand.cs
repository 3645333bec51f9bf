using System.CommandLine;
using Ddpo.Data;
using Ddpo.Pipelines;
using Ddpo.Pretraining;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo pretrain</c>: ordinary denoising training of a (small) text-to-image model.</summary>
internal static class PretrainCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var defaults = new PretrainOptions();
        var data = new Option<string>("--data") { Description = "dataset folder written by 'ddpo make-data'", Required = true };
        var output = new Option<string>("--out") { Description = "model folder: created with the built-in architecture if absent, else trained further", Required = true };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => defaults.Steps, Description = "optimizer steps" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => defaults.BatchSize, Description = "images per step" };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => defaults.LearningRate, Description = "peak learning rate" };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => defaults.Seed, Description = "random seed" };
        var ema = new Option<double>("--ema") { DefaultValueFactory = _ => defaults.EmaDecay, Description = "EMA decay of the saved weights (0 = off)" };
        var common = new CommonOptions();
        var command = new Command("pretrain", "Train a text-to-image diffusion model by denoising score matching (how the built-in model is made)")
        {
            data, output, steps, batch, lr, seed, ema,
        };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            var (device, _) = common.Resolve(parse);
            var options = new PretrainOptions
            {
                Steps = parse.GetValue(steps),
                BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr),
                Seed = parse.GetValue(seed),
                EmaDecay = parse.GetValue(ema),
            };
            options.Validate();
            var dir = parse.GetValue(output)!;
            if (!Directory.Exists(dir) || !Directory.EnumerateFileSystemEntries(dir).Any())
            {
                TinyPipelineWriter.Write(BuiltinArchitecture.Options, dir);
                AnsiConsole.MarkupLineInterpolated($"initialised a new model (built-in architecture) in [green]{dir}[/]");
            }
            using var dataset = EmojiDataset.Load(parse.GetValue(data)!);
            using var pipeline = TextToImagePipeline.FromPretrained(dir, device);
            var trainer = new DenoisingPretrainer(pipeline, options);
            var last = ProgressReporter.Run($"pretraining ({dataset.Count} images)", options.Steps, p =>
                trainer.Train(dataset, dir, new Progress<PretrainLogEntry>(e =>
                {
                    p.Report(e.Step);
                    AnsiConsole.MarkupLineInterpolated($"step {e.Step,6}  loss {e.Loss:F4}  lr {e.LearningRate:E2}  {e.Seconds:F0} s");
                })));
            AnsiConsole.MarkupLineInterpolated($"done: final loss {last.Loss:F4} after {last.Seconds:F0} s; model in [green]{dir}[/]");
            return 0;
        });
        return command;
    }
}
