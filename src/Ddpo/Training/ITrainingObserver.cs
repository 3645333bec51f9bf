using Ddpo.Runs;

namespace Ddpo.Training;

/// <summary>
/// Receives progress from <see cref="DdpoTrainer"/> (progress bars, summary lines, logs). What a run writes besides
/// its metrics, checkpoints and LoRA (the HTML report, TensorBoard events) is written by observers too.
/// </summary>
public interface ITrainingObserver
{
    /// <summary>A phase (<c>sampling</c>, <c>rewards</c>, <c>training</c>, <c>eval images</c>) of an epoch starts with <paramref name="total"/> units of work.</summary>
    void PhaseStarted(int epoch, string phase, int total);

    /// <summary><paramref name="done"/> units of the current phase are finished.</summary>
    void PhaseProgress(string phase, int done);

    /// <summary>An epoch finished; <paramref name="metrics"/> is the line written to metrics.jsonl.</summary>
    void EpochFinished(EpochMetrics metrics);

    /// <summary>Something worth telling the user (checkpoint written, resumed, samples dropped).</summary>
    void Message(string text);

    /// <summary>The last epoch and the final fixed-seed images are done (called once per <see cref="DdpoTrainer.RunAsync"/> that completes).</summary>
    void RunFinished() { }
}

/// <summary>An observer that ignores everything.</summary>
internal sealed class NullTrainingObserver : ITrainingObserver
{
    /// <summary>The shared instance.</summary>
    public static readonly NullTrainingObserver Instance = new();

    /// <inheritdoc />
    public void PhaseStarted(int epoch, string phase, int total) { }
    /// <inheritdoc />
    public void PhaseProgress(string phase, int done) { }
    /// <inheritdoc />
    public void EpochFinished(EpochMetrics metrics) { }
    /// <inheritdoc />
    public void Message(string text) { }
}

/// <summary>Passes every call on to several observers, in order.</summary>
internal sealed class CompositeTrainingObserver(IEnumerable<ITrainingObserver> observers) : ITrainingObserver
{
    private readonly ITrainingObserver[] _observers = observers.ToArray();

    /// <summary>The observers, in the order they are called.</summary>
    public IReadOnlyList<ITrainingObserver> Observers => _observers;

    /// <inheritdoc />
    public void PhaseStarted(int epoch, string phase, int total) { foreach (var o in _observers) o.PhaseStarted(epoch, phase, total); }
    /// <inheritdoc />
    public void PhaseProgress(string phase, int done) { foreach (var o in _observers) o.PhaseProgress(phase, done); }
    /// <inheritdoc />
    public void EpochFinished(EpochMetrics metrics) { foreach (var o in _observers) o.EpochFinished(metrics); }
    /// <inheritdoc />
    public void Message(string text) { foreach (var o in _observers) o.Message(text); }
    /// <inheritdoc />
    public void RunFinished() { foreach (var o in _observers) o.RunFinished(); }
}
