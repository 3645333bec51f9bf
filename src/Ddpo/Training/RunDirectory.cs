namespace Ddpo.Training;

/// <summary>The files of a training run: config, metrics, images, checkpoints, report.</summary>
internal sealed class RunDirectory
{
    /// <summary>The run folder.</summary>
    public string Root { get; }

    /// <summary>Creates (if needed) the run folder and its sub-folders.</summary>
    public RunDirectory(string root)
    {
        Root = Path.GetFullPath(root);
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(ImagesDir);
    }

    /// <summary>One JSON object per epoch.</summary>
    public string MetricsFile => Path.Combine(Root, "metrics.jsonl");
    /// <summary>The fully resolved configuration (TOML).</summary>
    public string ConfigFile => Path.Combine(Root, "config.toml");
    /// <summary>Fixed-seed sample images per epoch.</summary>
    public string ImagesDir => Path.Combine(Root, "images");
    /// <summary>Checkpoints, one folder each.</summary>
    public string CheckpointsDir => Path.Combine(Root, "checkpoints");
    /// <summary>The prompts of the fixed-seed images (JSON).</summary>
    public string EvalPromptsFile => Path.Combine(ImagesDir, "prompts.json");
    /// <summary>The HTML report.</summary>
    public string ReportFile => Path.Combine(Root, "report.html");

    /// <summary>The folder of one epoch's fixed-seed images.</summary>
    public string EpochImagesDir(int epoch) => Path.Combine(ImagesDir, $"epoch-{epoch:D4}");
}
