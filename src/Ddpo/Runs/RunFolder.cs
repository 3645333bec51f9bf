using System.Globalization;

namespace Ddpo.Runs;

/// <summary>
/// The files of a training run, the one place that names them: <c>config.toml</c>, <c>metrics.jsonl</c>,
/// <c>prompts.txt</c>, <c>images/</c> (fixed-seed images per epoch and their <c>prompts.json</c>), <c>checkpoints/</c>,
/// <c>pending/</c> (epochs whose rewards failed), <c>eval/</c>, <c>report.html</c>, <c>tensorboard/</c> and the exported weights.
/// </summary>
internal sealed class RunFolder
{
    /// <summary>One JSON object per epoch (<see cref="MetricsLog"/>).</summary>
    public const string MetricsFileName = "metrics.jsonl";
    /// <summary>The fully resolved configuration (TOML).</summary>
    public const string ConfigFileName = "config.toml";
    /// <summary>The prompt list a program gave as a list (one prompt a line).</summary>
    public const string PromptListFileName = "prompts.txt";
    /// <summary>The folder of the fixed-seed images.</summary>
    public const string ImagesFolderName = "images";
    /// <summary>The prompts of the fixed-seed images (JSON), inside <see cref="ImagesFolderName"/>.</summary>
    public const string EvalPromptsFileName = "prompts.json";
    /// <summary>The grid of an epoch's fixed-seed images, inside its <see cref="EpochImagesFolderName"/>.</summary>
    public const string GridFileName = "grid.png";
    /// <summary>The checkpoints folder, one folder per checkpoint.</summary>
    public const string CheckpointsFolderName = "checkpoints";
    /// <summary>The state file inside a checkpoint folder (<see cref="TrainingState"/>).</summary>
    public const string CheckpointStateFileName = "state.json";
    /// <summary>The tensor file inside a checkpoint folder.</summary>
    public const string CheckpointTensorsFileName = "tensors.safetensors";
    /// <summary>The folder of epochs whose samples were drawn but whose rewards failed (<see cref="PendingEpoch"/>).</summary>
    public const string PendingFolderName = "pending";
    /// <summary>The tensor file inside a pending epoch's folder.</summary>
    public const string PendingTensorsFileName = "samples.safetensors";
    /// <summary>The prompts, metadata and groups file inside a pending epoch's folder.</summary>
    public const string PendingPromptsFileName = "prompts.json";
    /// <summary>The folder of <c>ddpo eval</c>'s results.</summary>
    public const string EvalFolderName = "eval";
    /// <summary>The HTML report.</summary>
    public const string ReportFileName = "report.html";
    /// <summary>The TensorBoard event-file folder.</summary>
    public const string TensorBoardFolderName = "tensorboard";

    /// <summary>The prefix of the numbered folders (images, checkpoints, pending epochs): <c>epoch-</c>.</summary>
    public const string EpochFolderPrefix = "epoch-";

    /// <summary>Creates (if needed) the run folder and its <c>images</c> folder.</summary>
    public RunFolder(string root) : this(root, create: true)
    {
    }

    private RunFolder(string root, bool create)
    {
        Root = Path.GetFullPath(root);
        if (!create) return;
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(ImagesDir);
    }

    /// <summary>The run folder <paramref name="root"/> as it is: nothing is created (for readers: the report, eval).</summary>
    public static RunFolder At(string root) => new(root, create: false);

    /// <summary>The run folder.</summary>
    public string Root { get; }

    /// <summary><c>metrics.jsonl</c>.</summary>
    public string MetricsFile => Path.Combine(Root, MetricsFileName);
    /// <summary><c>config.toml</c>.</summary>
    public string ConfigFile => Path.Combine(Root, ConfigFileName);
    /// <summary><c>prompts.txt</c>.</summary>
    public string PromptListFile => Path.Combine(Root, PromptListFileName);
    /// <summary><c>images/</c>.</summary>
    public string ImagesDir => Path.Combine(Root, ImagesFolderName);
    /// <summary><c>images/prompts.json</c>.</summary>
    public string EvalPromptsFile => Path.Combine(ImagesDir, EvalPromptsFileName);
    /// <summary><c>checkpoints/</c>.</summary>
    public string CheckpointsDir => Path.Combine(Root, CheckpointsFolderName);
    /// <summary><c>pending/</c>.</summary>
    public string PendingDir => Path.Combine(Root, PendingFolderName);
    /// <summary><c>eval/</c>.</summary>
    public string EvalDir => Path.Combine(Root, EvalFolderName);
    /// <summary><c>report.html</c>.</summary>
    public string ReportFile => Path.Combine(Root, ReportFileName);
    /// <summary><c>tensorboard/</c>.</summary>
    public string TensorBoardDir => Path.Combine(Root, TensorBoardFolderName);

    /// <summary>The folder name of one epoch's fixed-seed images (<c>epoch-0003</c>).</summary>
    public static string EpochImagesFolderName(int epoch) => EpochFolderPrefix + epoch.ToString("D4", CultureInfo.InvariantCulture);
    /// <summary>The folder of one epoch's fixed-seed images (<c>images/epoch-0003</c>).</summary>
    public string EpochImagesDir(int epoch) => Path.Combine(ImagesDir, EpochImagesFolderName(epoch));
    /// <summary>The file of fixed-seed image <paramref name="index"/> inside an epoch's image folder (<c>00.png</c>).</summary>
    public static string EvalImageFileName(int index) => index.ToString("D2", CultureInfo.InvariantCulture) + ".png";

    /// <summary>The folder name of an epoch's checkpoint (<c>epoch-000010</c>).</summary>
    public static string CheckpointFolderName(int epoch) => EpochFolderPrefix + epoch.ToString("D6", CultureInfo.InvariantCulture);
    /// <summary>The folder of an epoch's checkpoint (<c>checkpoints/epoch-000010</c>).</summary>
    public string CheckpointDir(int epoch) => Path.Combine(CheckpointsDir, CheckpointFolderName(epoch));

    /// <summary>The folder of a pending epoch (<c>pending/epoch-000003</c>).</summary>
    public string PendingEpochDir(int epoch) => Path.Combine(PendingDir, EpochFolderPrefix + epoch.ToString("D6", CultureInfo.InvariantCulture));

    /// <summary>The result file of <c>ddpo eval</c> for a checkpoint's epoch (<c>eval/eval-epoch-0010.json</c>).</summary>
    public string EvalResultFile(int epoch) => Path.Combine(EvalDir, "eval-epoch-" + epoch.ToString("D4", CultureInfo.InvariantCulture) + ".json");

    /// <summary>The exported fine-tuned weights in the run folder, <paramref name="fileName"/> naming them (LoRA or the whole UNet).</summary>
    public string WeightsFile(string fileName) => Path.Combine(Root, fileName);
}
