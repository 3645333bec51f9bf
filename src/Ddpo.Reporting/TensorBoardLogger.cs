using System.Collections;
using System.Globalization;
using TorchSharp;
using Ddpo.Runs;

namespace Ddpo.Reporting;

/// <summary>
/// Writes TensorBoard event files into <c>RUN_DIR/tensorboard/</c> through TorchSharp's
/// <c>torch.utils.tensorboard.SummaryWriter</c>: every numeric metric of an epoch as a scalar (nested
/// objects flattened with '/', e.g. <c>prompt_rewards/a cat/mean</c>) and the epoch's eval image grid.
/// Each event is appended and flushed as it is logged, so there is nothing to close.
/// </summary>
internal sealed class TensorBoardLogger
{
    /// <summary>The image tag of the eval grid.</summary>
    public const string GridTag = "eval/grid";

    private readonly TorchSharp.Modules.SummaryWriter _writer;

    /// <summary>Creates <c>runDir/tensorboard/</c> and a new event file in it (one per logger, as in PyTorch).</summary>
    public TensorBoardLogger(string runDir)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(runDir);
        LogDirectory = RunFolder.At(runDir).TensorBoardDir;
        _writer = torch.utils.tensorboard.SummaryWriter(LogDirectory);
    }

    /// <summary>The folder holding the event files.</summary>
    public string LogDirectory { get; }

    /// <summary>
    /// Logs one epoch at step <c>metrics["epoch"]</c>: each numeric value (any .NET number type; NaN
    /// allowed) as a scalar tagged with its key, nested dictionaries flattened as <c>key/subkey</c>; strings,
    /// booleans, lists and nulls are skipped. Where <paramref name="gridPngPath"/> is given, that image is
    /// logged under <see cref="GridTag"/>. Takes the <see cref="EpochMetrics.Values"/> of the line the trainer
    /// appends to metrics.jsonl.
    /// </summary>
    /// <exception cref="ArgumentException"><c>epoch</c> is missing or not a non-negative whole number.</exception>
    /// <exception cref="FileNotFoundException"><paramref name="gridPngPath"/> does not exist.</exception>
    public void LogEpoch(IReadOnlyDictionary<string, object?> metrics, string? gridPngPath)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        if (!metrics.TryGetValue("epoch", out var e) || ToDouble(e) is not { } ed || !double.IsFinite(ed) || ed < 0 || ed != Math.Floor(ed) || ed > int.MaxValue)
        {
            throw new ArgumentException($"metrics field 'epoch' must be a non-negative whole number, got {e ?? "nothing"}", nameof(metrics));
        }
        int step = (int)ed;
        if (gridPngPath is not null && !File.Exists(gridPngPath))
        {
            throw new FileNotFoundException($"eval image grid not found: {gridPngPath}", gridPngPath);
        }
        // TensorBoard wants seconds since the Unix epoch (SummaryWriter's own default is DateTime ticks).
        long wallTime = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        foreach (var (tag, value) in Flatten(metrics, prefix: ""))
        {
            if (tag == "epoch") continue;
            _writer.add_scalar(tag, (float)value, step, wallTime);
        }
        if (gridPngPath is not null) _writer.add_img(GridTag, gridPngPath, step, wallTime);
    }

    private static IEnumerable<(string Tag, double Value)> Flatten(IEnumerable entries, string prefix)
    {
        foreach (var (key, value) in Pairs(entries))
        {
            var tag = prefix + key;
            if (ToDouble(value) is { } d)
            {
                yield return (tag, d);
            }
            else if (value is IDictionary or IEnumerable<KeyValuePair<string, object?>> && value is not string)
            {
                foreach (var inner in Flatten((IEnumerable)value, tag + "/")) yield return inner;
            }
        }
    }

    private static IEnumerable<(string Key, object? Value)> Pairs(IEnumerable entries)
    {
        if (entries is IDictionary dict)
        {
            foreach (DictionaryEntry de in dict) yield return (Convert.ToString(de.Key, CultureInfo.InvariantCulture) ?? "", de.Value);
        }
        else
        {
            foreach (var kv in (IEnumerable<KeyValuePair<string, object?>>)entries) yield return (kv.Key, kv.Value);
        }
    }

    private static double? ToDouble(object? o) => o switch
    {
        double d => d,
        float f => f,
        int i => i,
        long l => l,
        short s => s,
        byte b => b,
        uint u => u,
        ulong ul => ul,
        decimal m => (double)m,
        _ => null,
    };
}
