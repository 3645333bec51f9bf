namespace Ddpo.Training;

/// <summary>
/// What a run writes besides <c>metrics.jsonl</c>, <c>config.toml</c> and the final LoRA (or UNet) weights, each optional.
/// <see cref="DdpoTrainer"/> writes the image grids and checkpoints; the HTML report and TensorBoard events are
/// observers (<c>Ddpo.Reporting.HtmlReportObserver</c>, <c>Ddpo.Reporting.TensorBoardObserver</c>) that
/// <see cref="Ddpo.DdpoRun"/> adds when asked.
/// </summary>
public sealed record RunOutputs
{
    /// <summary>Everything (what <c>ddpo train</c> writes).</summary>
    public static RunOutputs All { get; } = new();

    /// <summary>Only metrics, config and the final weights.</summary>
    public static RunOutputs Minimal { get; } = new() { HtmlReport = false, TensorBoard = false, ImageGrids = false, Checkpoints = false };

    /// <summary><c>report.html</c>, rewritten after every epoch.</summary>
    public bool HtmlReport { get; init; } = true;

    /// <summary>TensorBoard events under <c>tensorboard/</c>.</summary>
    public bool TensorBoard { get; init; } = true;

    /// <summary>The fixed-seed images every <c>logging.image_every</c> epochs under <c>images/</c>.</summary>
    public bool ImageGrids { get; init; } = true;

    /// <summary>Checkpoints every <c>save_freq</c> epochs and after the last one (needed to resume).</summary>
    public bool Checkpoints { get; init; } = true;
}
