using Ddpo.Runs;
using Ddpo.Training;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary>
/// Shows training progress as Spectre.Console progress bars and one summary line per epoch, plus a warning line for an
/// epoch whose rewards collapsed. Where the console is not interactive (output redirected to a file or a pipe, see
/// <see cref="CliApp.UnwrapRedirectedOutput"/>) there are no progress bars: only the lines.
/// </summary>
internal sealed class ConsoleTrainingObserver : ITrainingObserver
{
    private ProgressContext? _context;
    private readonly Dictionary<string, ProgressTask> _tasks = new();
    private bool _quiet;

    /// <summary>Shows nothing (the ranks other than 0 of a multi-process run: rank 0 shows the run).</summary>
    public void Quiet() => _quiet = true;

    /// <summary>Runs the training under a live progress display.</summary>
    public async Task RunAsync(Func<Task> training)
    {
        // Spectre's fallback for a non-interactive console prints progress milestones as lines: noise in a log file.
        if (_quiet || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            await training();
            return;
        }
        await AnsiConsole.Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                _context = ctx;
                await training();
            });
    }

    /// <inheritdoc />
    public void PhaseStarted(int epoch, string phase, int total)
    {
        if (_context is null) return;
        if (_tasks.TryGetValue(phase, out var old)) old.StopTask();
        _tasks[phase] = _context.AddTask($"epoch {epoch}: {phase}", maxValue: Math.Max(total, 1));
    }

    /// <inheritdoc />
    public void PhaseProgress(string phase, int done)
    {
        if (_tasks.TryGetValue(phase, out var task)) task.Value = done;
    }

    /// <inheritdoc />
    public void EpochFinished(EpochMetrics m)
    {
        foreach (var t in _tasks.Values) t.StopTask();
        _tasks.Clear();
        if (_quiet) return;
        AnsiConsole.MarkupLineInterpolated(
            $"epoch {m.Epoch,3}  reward {m.RewardMean:F4} ± {m.RewardStd:F4}  kl {m.ApproxKl:E2}  clipfrac {m.ClipFrac:F3}  loss {m.Loss:E2}  sample {m.SamplingSeconds:F1}s  reward {m.RewardSeconds:F1}s  train {m.TrainingSeconds:F1}s{Extras(m)}");
        if (m.CollapseWarning() is { } warning) AnsiConsole.MarkupLineInterpolated($"[yellow]warning:[/] {warning}");
    }

    /// <inheritdoc />
    public void Message(string text)
    {
        if (!_quiet) AnsiConsole.MarkupLineInterpolated($"[grey]{text}[/]");
    }

    /// <summary>The optional columns: the KL to the base model (train.kl_coef &gt; 0) and GRPO's groups without signal.</summary>
    private static string Extras(EpochMetrics m) =>
        (double.IsNaN(m.KlMean) ? "" : FormattableString.Invariant($"  kl_base {m.KlMean:E2}")) +
        (double.IsNaN(m.ZeroStdGroups) ? "" : FormattableString.Invariant($"  zero_std_groups {m.ZeroStdGroups:F0}/{m.Groups:F0}"));
}
