using Ddpo.Training;

namespace Ddpo.Reporting;

/// <summary>
/// The run writers of this assembly, for <see cref="RunOutputs.Writers"/>: <c>report.html</c> and TensorBoard events.
/// <c>RunOutputs.All.WithReports()</c> is what <c>ddpo train</c> writes.
/// </summary>
public static class RunWriters
{
    /// <summary><c>RUN/report.html</c>, rewritten after every epoch and when the run finishes (<see cref="HtmlReportObserver"/>).</summary>
    public static IRunWriter HtmlReport { get; } = new Writer((dir, log) => new HtmlReportObserver(dir, log));

    /// <summary>TensorBoard events under <c>RUN/tensorboard/</c> (<see cref="TensorBoardObserver"/>).</summary>
    public static IRunWriter TensorBoard { get; } = new Writer((dir, log) => new TensorBoardObserver(dir, log));

    /// <summary><paramref name="outputs"/> with TensorBoard events and the HTML report added.</summary>
    public static RunOutputs WithReports(this RunOutputs outputs) => outputs.With(TensorBoard, HtmlReport);

    private sealed class Writer(Func<string, Action<string>, ITrainingObserver> open) : IRunWriter
    {
        public ITrainingObserver Open(string runDirectory, Action<string> log) => open(runDirectory, log);
    }
}
