using System.CommandLine;
using Ddpo.Reporting;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo report RUN_DIR [RUN_DIR ...]</c>: (re)builds a run's report.html, or compares runs.</summary>
internal static class ReportCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var runs = new Argument<string[]>("runs") { Description = "run folder(s); two or more are compared", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string?>("--out") { Description = "comparison HTML file (default: comparison.html in the current folder)" };
        var command = new Command("report", "Rebuild RUN_DIR/report.html, or overlay several runs' reward curves in one page") { runs, output };
        command.SetAction(parse =>
        {
            var dirs = parse.GetValue(runs)!;
            foreach (var dir in dirs)
            {
                if (!Directory.Exists(dir)) throw new ArgumentException($"run folder '{dir}' not found");
            }
            if (dirs.Length == 1)
            {
                var path = RunReport.Write(dirs[0]);
                AnsiConsole.MarkupLineInterpolated($"wrote [green]{path}[/]");
            }
            else
            {
                foreach (var dir in dirs) RunReport.Write(dir);
                var path = ComparisonReport.Write(dirs, parse.GetValue(output) ?? "comparison.html");
                AnsiConsole.MarkupLineInterpolated($"wrote [green]{path}[/] comparing {dirs.Length} runs");
            }
            return 0;
        });
        return command;
    }
}
