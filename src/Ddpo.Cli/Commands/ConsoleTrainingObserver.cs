using Ddpo.Training;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary>Shows training progress as Spectre.Console progress bars and one summary line per epoch.</summary>
public sealed class ConsoleTrainingObserver : ITrainingObserver
{
    private ProgressContext? _context;
    private readonly Dictionary<string, ProgressTask> _tasks = new();
    private bool _quiet;

    /// <summary>Shows nothing (the ranks other than 0 of a multi-process run: rank 0 shows the run).</summary>
    public void Quiet() => _quiet = true;

    /// <summary>Runs the training under a live progress display.</summary>
    public async Task RunAsync(Func<Task> training)
    {
        if (_quiet)
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
    public void EpochFinished(IReadOnlyDictionary<string, object?> m)
    {
        foreach (var t in _tasks.Values) t.StopTask();
        _tasks.Clear();
        if (_quiet) return;
        AnsiConsole.MarkupLineInterpolated(
            $"epoch {m["epoch"],3}  reward {Num(m["reward_mean"]):F4} ± {Num(m["reward_std"]):F4}  kl {Num(m["approx_kl"]):E2}  clipfrac {Num(m["clipfrac"]):F3}  loss {Num(m["loss"]):E2}  sample {Num(m["sampling_s"]):F1}s  reward {Num(m["reward_s"]):F1}s  train {Num(m["training_s"]):F1}s");
    }

    /// <inheritdoc />
    public void Message(string text)
    {
        if (!_quiet) AnsiConsole.MarkupLineInterpolated($"[grey]{text}[/]");
    }

    private static double Num(object? value) => Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture);
}
