namespace Ddpo.Training;

/// <summary>Receives progress from <see cref="DdpoTrainer"/> (progress bars, summary lines, logs).</summary>
public interface ITrainingObserver
{
    /// <summary>A phase (<c>sampling</c>, <c>rewards</c>, <c>training</c>, <c>eval images</c>) of an epoch starts with <paramref name="total"/> units of work.</summary>
    void PhaseStarted(int epoch, string phase, int total);

    /// <summary><paramref name="done"/> units of the current phase are finished.</summary>
    void PhaseProgress(string phase, int done);

    /// <summary>An epoch finished; <paramref name="metrics"/> is the line written to metrics.jsonl.</summary>
    void EpochFinished(IReadOnlyDictionary<string, object?> metrics);

    /// <summary>Something worth telling the user (checkpoint written, resumed, samples dropped).</summary>
    void Message(string text);
}

/// <summary>An observer that ignores everything.</summary>
public sealed class NullTrainingObserver : ITrainingObserver
{
    /// <summary>The shared instance.</summary>
    public static readonly NullTrainingObserver Instance = new();

    /// <inheritdoc />
    public void PhaseStarted(int epoch, string phase, int total) { }
    /// <inheritdoc />
    public void PhaseProgress(string phase, int done) { }
    /// <inheritdoc />
    public void EpochFinished(IReadOnlyDictionary<string, object?> metrics) { }
    /// <inheritdoc />
    public void Message(string text) { }
}
