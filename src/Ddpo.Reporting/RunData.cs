using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Ddpo.Models.Loading;
using Ddpo.Runs;
using Ddpo.Training;

namespace Ddpo.Reporting;

/// <summary>One <c>images/epoch-NNNN</c> folder of fixed-seed evaluation images.</summary>
/// <param name="Epoch">The epoch number in the folder name.</param>
/// <param name="Directory">The folder's full path.</param>
internal sealed record ImageEpoch(int Epoch, string Directory)
{
    /// <summary>The image of eval prompt <paramref name="promptIndex"/> in this folder (<c>00.png</c>, <c>01.png</c>, ...), whether or not it exists.</summary>
    public string ImagePath(int promptIndex) => Path.Combine(Directory, RunFolder.EvalImageFileName(promptIndex));
}

/// <summary>
/// Everything a report shows about one run directory, read from disk: <c>metrics.jsonl</c>,
/// <c>config.toml</c>, <c>images/prompts.json</c> and the <c>images/epoch-NNNN</c> folders.
/// </summary>
internal sealed partial class RunData
{
    private RunData(string directory, IReadOnlyList<EpochMetrics> epochs, string? configText,
        IReadOnlyList<string> evalPrompts, IReadOnlyList<ImageEpoch> imageEpochs)
    {
        Directory = directory;
        Epochs = epochs;
        ConfigText = configText;
        EvalPrompts = evalPrompts;
        ImageEpochs = imageEpochs;
        var keys = epochs.SelectMany(e => e.Values.Keys).Distinct().ToList();
        WatchRewards = keys.Select(k => WatchKey().Match(k)).Where(m => m.Success).Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal).ToList();
        RewardComponents = keys.Select(k => ComponentKey().Match(k)).Where(m => m.Success).Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The run directory (full path).</summary>
    public string Directory { get; }

    /// <summary>The run directory's folder name, used as the run's name.</summary>
    public string Name => Path.GetFileName(Directory);

    /// <summary>
    /// One entry per logged epoch, ordered by epoch. Where an epoch was logged more than once (a resumed
    /// run re-logs it) the last line wins.
    /// </summary>
    public IReadOnlyList<EpochMetrics> Epochs { get; }

    /// <summary>The text of <c>config.toml</c>, or null where the file is absent.</summary>
    public string? ConfigText { get; }

    /// <summary>The fixed-seed eval prompts from <c>images/prompts.json</c>; empty where absent.</summary>
    public IReadOnlyList<string> EvalPrompts { get; }

    /// <summary>The <c>images/epoch-NNNN</c> folders, ordered by epoch.</summary>
    public IReadOnlyList<ImageEpoch> ImageEpochs { get; }

    /// <summary>Names of the watch rewards (logged, not optimised): <c>aesthetic</c> for the field <c>watch_aesthetic_mean</c>.</summary>
    public IReadOnlyList<string> WatchRewards { get; }

    /// <summary>Names of the components of a weighted reward: <c>jpeg</c> for the field <c>reward_jpeg_mean</c>.</summary>
    public IReadOnlyList<string> RewardComponents { get; }

    /// <summary>The epoch numbers of <see cref="Epochs"/> as doubles (x values of every plot).</summary>
    public double[] EpochNumbers => Epochs.Select(e => (double)e.Epoch).ToArray();

    /// <summary>The numeric field <paramref name="key"/> of every epoch (NaN where missing).</summary>
    public double[] Series(string key) => Epochs.Select(e => e[key]).ToArray();

    /// <summary>Whether any epoch has the field <paramref name="key"/> as a number.</summary>
    public bool Has(string key) => Epochs.Any(e => e.TryGetNumber(key, out _));

    /// <summary>
    /// The epochs whose rewards had no spread (<c>reward_collapsed</c>; for a line written before that field, reward_min
    /// equal to reward_max over at least 2 finite rewards): the policy has likely collapsed.
    /// </summary>
    public IReadOnlyList<int> CollapsedEpochs => Epochs.Where(IsCollapsed).Select(e => e.Epoch).ToList();

    private static bool IsCollapsed(EpochMetrics e) => e.RewardCollapsed
        ?? (e.Samples - (double.IsNaN(e.NonfiniteRewards) ? 0 : e.NonfiniteRewards) >= 2 && EpochMetrics.IsCollapsed([e.RewardMin, e.RewardMax]));

    /// <summary>Reads the run directory <paramref name="runDirectory"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">It has no <c>metrics.jsonl</c>, so it is not a run directory.</exception>
    /// <exception cref="FormatException">A metrics line or <c>prompts.json</c> is malformed (the message names the file).</exception>
    public static RunData Load(string runDirectory)
    {
        var dir = Path.GetFullPath(runDirectory).TrimEnd(Path.DirectorySeparatorChar);
        if (!System.IO.Directory.Exists(dir)) throw new DirectoryNotFoundException($"run directory not found: {dir}");
        var run = RunFolder.At(dir);
        var metricsPath = run.MetricsFile;
        if (!File.Exists(metricsPath))
        {
            throw new FileNotFoundException($"{dir} is not a run directory: it has no {RunFolder.MetricsFileName}", metricsPath);
        }

        var byEpoch = new SortedDictionary<int, EpochMetrics>();
        foreach (var e in ReadMetrics(metricsPath)) byEpoch[e.Epoch] = e;

        var configPath = run.ConfigFile;
        var config = File.Exists(configPath) ? Utf8Text.ReadFile(configPath, message => new FormatException(message)) : null;
        return new RunData(dir, byEpoch.Values.ToList(), config, ReadPrompts(run.EvalPromptsFile), FindImageEpochs(run.ImagesDir));
    }

    /// <summary>
    /// The complete lines of metrics.jsonl: a last line still being appended by the trainer (no newline
    /// yet) is left out; a malformed complete line is an error naming the file and line.
    /// </summary>
    private static IReadOnlyList<EpochMetrics> ReadMetrics(string path) => MetricsLog.ReadComplete(path);

    private static List<string> ReadPrompts(string path)
    {
        if (!File.Exists(path)) return [];
        try
        {
            using var doc = JsonDocument.Parse(Utf8Text.ReadFile(path, message => new FormatException(message)));
            if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new FormatException("expected a JSON array of prompt strings");
            return doc.RootElement.EnumerateArray().Select((p, i) => p.ValueKind == JsonValueKind.String
                ? p.GetString()!
                : throw new FormatException($"element {i} is {p.ValueKind}, expected a prompt string")).ToList();
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            throw new FormatException($"{path}: malformed eval prompt list ({e.Message})", e);
        }
    }

    private static List<ImageEpoch> FindImageEpochs(string images)
    {
        if (!System.IO.Directory.Exists(images)) return [];
        return System.IO.Directory.GetDirectories(images)
            .Select(d => (Dir: d, Match: EpochFolder().Match(Path.GetFileName(d))))
            .Where(x => x.Match.Success && int.TryParse(x.Match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Select(x => new ImageEpoch(int.Parse(x.Match.Groups[1].Value, CultureInfo.InvariantCulture), x.Dir))
            .OrderBy(x => x.Epoch)
            .ToList();
    }

    [GeneratedRegex(@"^watch_(.+)_mean$")]
    private static partial Regex WatchKey();

    [GeneratedRegex(@"^reward_(.+)_mean$")]
    private static partial Regex ComponentKey();

    [GeneratedRegex(@"^epoch-(\d{1,9})$")]
    private static partial Regex EpochFolder();
}
