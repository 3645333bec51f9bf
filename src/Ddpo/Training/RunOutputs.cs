namespace Ddpo.Training;

/// <summary>
/// What a run writes besides <c>metrics.jsonl</c>, <c>config.toml</c> and the final LoRA (or UNet) weights, each optional.
/// <see cref="DdpoTrainer"/> writes the image grids and checkpoints; everything else is written by <see cref="Writers"/>
/// (the HTML report and TensorBoard events of the <c>Ddpo.Reporting</c> assembly: <c>RunOutputs.All.WithReports()</c>
/// is what <c>ddpo train</c> writes).
/// </summary>
public sealed record RunOutputs
{
    /// <summary>Image grids and checkpoints, and no writers.</summary>
    public static RunOutputs All { get; } = new();

    /// <summary>Only metrics, config and the final weights.</summary>
    public static RunOutputs Minimal { get; } = new() { ImageGrids = false, Checkpoints = false };

    /// <summary>The fixed-seed images every <c>logging.image_every</c> epochs under <c>images/</c>.</summary>
    public bool ImageGrids { get; init; } = true;

    /// <summary>Checkpoints every <c>save_freq</c> epochs and after the last one (needed to resume).</summary>
    public bool Checkpoints { get; init; } = true;

    /// <summary>What else is written into the run folder as the run goes (each an observer, on the writing process only).</summary>
    public IReadOnlyList<IRunWriter> Writers { get; init; } = [];

    /// <summary>These outputs with <paramref name="writers"/> added after the present ones.</summary>
    public RunOutputs With(params IRunWriter[] writers) => this with { Writers = [.. Writers, .. writers] };
}

/// <summary>
/// Something a run writes into its folder as it goes, as an observer: the HTML report, TensorBoard events, or a
/// program's own. <see cref="Ddpo.DdpoRun"/> opens each once the run folder exists, on the process that writes
/// (rank 0 of a process group), and calls the observer after the options' own observers.
/// </summary>
public interface IRunWriter
{
    /// <summary>
    /// The observer that writes into <paramref name="runDirectory"/>. <paramref name="log"/> reaches the run's
    /// observers: a failed write should be reported there rather than stop training.
    /// </summary>
    ITrainingObserver Open(string runDirectory, Action<string> log);
}
