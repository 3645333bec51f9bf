using Ddpo.Runs;
using Ddpo.Training;

namespace Ddpo;

/// <summary>An observer made of two optional delegates: one per finished epoch, one per message.</summary>
public sealed class DelegateTrainingObserver(Action<EpochMetrics>? onEpoch, Action<string>? onMessage = null) : ITrainingObserver
{
    /// <inheritdoc />
    public void EpochFinished(EpochMetrics metrics) => onEpoch?.Invoke(metrics);
    /// <inheritdoc />
    public void Message(string text) => onMessage?.Invoke(text);
    /// <inheritdoc />
    public void PhaseStarted(int epoch, string phase, int total) { }
    /// <inheritdoc />
    public void PhaseProgress(string phase, int done) { }
}
