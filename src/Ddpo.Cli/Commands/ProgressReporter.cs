using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary>Runs work under a Spectre.Console progress display (plain lines when output is redirected).</summary>
internal static class ProgressReporter
{
    /// <summary>Runs <paramref name="work"/> with one progress bar of <paramref name="total"/> units.</summary>
    public static T Run<T>(string description, double total, Func<IProgress<double>, T> work)
    {
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(description, maxValue: Math.Max(total, 1));
                var progress = new Progress(task);
                result = work(progress);
                task.Value = task.MaxValue;
            });
        return result;
    }

    private sealed class Progress(ProgressTask task) : IProgress<double>
    {
        public void Report(double value) => task.Value = value;
    }
}
