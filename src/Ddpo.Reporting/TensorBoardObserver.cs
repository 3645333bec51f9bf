using Ddpo.Runs;
using Ddpo.Training;
using static TorchSharp.torch;

namespace Ddpo.Reporting;

/// <summary>
/// Writes every epoch's metrics and its fixed-seed image grid (where the epoch made one) as TensorBoard events under
/// <c>RUN/tensorboard</c>. A logging problem is reported through <paramref name="log"/> but never stops training.
/// </summary>
public sealed class TensorBoardObserver(string runDirectory, Action<string>? log = null) : ITrainingObserver
{
    private readonly RunFolder _run = new(runDirectory);
    private TensorBoardLogger? _logger;

    /// <inheritdoc />
    public void EpochFinished(EpochMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        using var scope = NewDisposeScope();
        try
        {
            _logger ??= new TensorBoardLogger(_run.Root);
            var grid = Path.Combine(_run.EpochImagesDir(metrics.Epoch), RunFolder.GridFileName);
            _logger.LogEpoch(metrics.Values, File.Exists(grid) ? grid : null);
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            log?.Invoke($"warning: TensorBoard logging failed: {e.Message}");
        }
    }

    /// <inheritdoc />
    public void PhaseStarted(int epoch, string phase, int total) { }
    /// <inheritdoc />
    public void PhaseProgress(string phase, int done) { }
    /// <inheritdoc />
    public void Message(string text) { }
}
