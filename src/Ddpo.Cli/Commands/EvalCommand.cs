using System.CommandLine;
using Ddpo.Evaluation;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary>
/// <c>ddpo eval</c>: base vs fine-tuned rewards on the training prompts, on held-out prompts, and on any other
/// prompt set (e.g. <c>everyday_objects</c>, the paper's test of generalisation beyond animals). The evaluation
/// itself is <see cref="RunEvaluation"/>; this command parses its options and prints the table.
/// </summary>
internal static class EvalCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var defaults = new EvaluationOptions();
        var run = new Option<string>("--run") { Description = "the run folder", Required = true };
        var checkpoint = new Option<int?>("--checkpoint") { Description = "the epoch of the checkpoint to evaluate (default: the newest)" };
        var prompts = new Option<string[]>("--prompts") { Description = "train, held-out, or any prompt set: a prompt_fn name such as everyday_objects, or file:PATH (repeatable)", DefaultValueFactory = _ => [.. defaults.PromptSets] };
        var rewards = new Option<string[]>("--reward") { Description = "reward to score with (repeatable; default: the run's reward, each component of a weighted one, and its watch rewards)" };
        var seeds = new Option<int>("--seeds") { Description = "images per prompt", DefaultValueFactory = _ => defaults.SeedsPerPrompt };
        var maxPrompts = new Option<int>("--max-prompts") { Description = "at most this many prompts per set, evenly spaced", DefaultValueFactory = _ => defaults.MaxPrompts };
        var common = new CommonOptions();
        var command = new Command("eval", "Compare base and fine-tuned models on the training prompts, on prompts held out of training, or on any prompt set") { run, checkpoint, prompts, rewards, seeds, maxPrompts };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            var evaluation = RunEvaluation.Open(parse.GetValue(run)!);
            var deviceText = parse.GetResult(common.Device) is { Implicit: false } ? parse.GetValue(common.Device) : evaluation.Config.Device;
            var (device, _) = common.Resolve(parse, deviceText);
            var options = new EvaluationOptions
            {
                CheckpointEpoch = parse.GetValue(checkpoint),
                PromptSets = parse.GetValue(prompts)!,
                Rewards = parse.GetValue(rewards) ?? [],
                SeedsPerPrompt = parse.GetValue(seeds),
                MaxPrompts = parse.GetValue(maxPrompts),
            };
            var result = evaluation.Evaluate(options, device, m => AnsiConsole.MarkupLineInterpolated($"[grey]{m}[/]"), new Progress());

            var table = new Table().AddColumns("prompts", "n", "reward", "base", $"fine-tuned (epoch {result.CheckpointEpoch})", "change ± paired SE");
            foreach (var row in result.Rows)
            {
                table.AddRow(row.PromptSet, row.Base.Count.ToString(), row.Reward, $"{row.Base.Mean:F4} ± {row.Base.Sem:F4}",
                    $"{row.FineTuned.Mean:F4} ± {row.FineTuned.Sem:F4}", $"{row.Change:+0.0000;-0.0000} ± {row.ChangeSem:F4} ({row.ChangeInSems:+0.0;-0.0} SE)");
            }
            AnsiConsole.Write(table);
            var outFile = evaluation.Write(result);
            AnsiConsole.MarkupLineInterpolated($"wrote [green]{outFile}[/]");
            return 0;
        });
        return command;
    }

    /// <summary>Each sampling phase under a progress bar.</summary>
    private sealed class Progress : IEvaluationProgress
    {
        public T Run<T>(string description, Func<T> work) => ProgressReporter.Run(description, 1, _ => work());
    }
}
