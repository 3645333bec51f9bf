using System.CommandLine;
using System.Diagnostics;
using Ddpo.Data;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo make-data</c>: writes a synthetic emoji-scene dataset for <c>ddpo pretrain</c>.</summary>
internal static class MakeDataCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "dataset folder", Required = true };
        var count = new Option<int>("--count") { DefaultValueFactory = _ => 50000, Description = "number of images" };
        var size = new Option<int>("--size") { DefaultValueFactory = _ => 32, Description = "image side in pixels" };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0, Description = "random seed" };
        var activities = new Option<double>("--activity-fraction") { DefaultValueFactory = _ => 0.25, Description = "fraction of 'a(n) animal activity' scenes" };
        var command = new Command("make-data", "Generate captioned emoji scenes (the 45 animals, 3 activities) to pretrain the built-in model") { output, count, size, seed, activities };
        command.SetAction(parse =>
        {
            int n = parse.GetValue(count);
            if (n < 1) throw new ArgumentException($"--count must be >= 1, got {n}");
            double fraction = parse.GetValue(activities);
            if (fraction is < 0 or > 1) throw new ArgumentException($"--activity-fraction must be in [0, 1], got {fraction}");
            var clock = Stopwatch.StartNew();
            EmojiDataset.Generate(parse.GetValue(output)!, n, parse.GetValue(size), parse.GetValue(seed), fraction);
            AnsiConsole.MarkupLineInterpolated($"wrote {n} images to [green]{parse.GetValue(output)}[/] in {clock.Elapsed.TotalSeconds:F1} s ({n / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):F0} images/s)");
            return 0;
        });
        return command;
    }
}
