using Ddpo.Runs;
using Ddpo.Training;

namespace Ddpo.Reporting;

/// <summary>
/// Rewrites <c>RUN/report.html</c> (<see cref="RunReport"/>) after every epoch and when the run finishes. A report
/// problem is reported through <paramref name="log"/> but never stops training.
/// </summary>
public sealed class HtmlReportObserver(string runDirectory, Action<string>? log = null) : ITrainingObserver
{
    /// <inheritdoc />
    public void EpochFinished(EpochMetrics metrics) => Write();

    /// <inheritdoc />
    public void RunFinished() => Write();

    /// <inheritdoc />
    public void PhaseStarted(int epoch, string phase, int total) { }
    /// <inheritdoc />
    public void PhaseProgress(string phase, int done) { }
    /// <inheritdoc />
    public void Message(string text) { }

    private void Write()
    {
        try
        {
            RunReport.Write(runDirectory);
        }
        catch (Exception e) when (e is IOException or FormatException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            log?.Invoke($"warning: could not write report.html: {e.Message}");
        }
    }
}
