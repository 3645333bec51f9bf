using System.Text;
using System.Text.Json;
using Ddpo.Runs;

namespace Ddpo.Tests.Support;

/// <summary>Writes hand-made metrics.jsonl lines (any fields, as an older or a broken version may have written them), serialised as <see cref="MetricsLog"/> does.</summary>
internal sealed class TestMetricsWriter(string directory) : IDisposable
{
    /// <summary>The metrics file in the folder.</summary>
    public string Path { get; } = RunFolder.At(directory).MetricsFile;

    /// <summary>Appends <paramref name="values"/> as one line.</summary>
    public void Write(IReadOnlyDictionary<string, object?> values)
    {
        Directory.CreateDirectory(directory);
        File.AppendAllText(Path, JsonSerializer.Serialize(values, MetricsLog.Options) + "\n", new UTF8Encoding(false));
    }

    public void Dispose() { }
}
