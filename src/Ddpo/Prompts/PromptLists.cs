using System.Collections.Concurrent;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Prompts;

/// <summary>
/// Prompt lists: the ones shipped with the library (<c>imagenet_classes.txt</c>, <c>simple_animals.txt</c>,
/// <c>activities.txt</c>, from ddpo-pytorch's assets; <c>everyday_objects.txt</c>, jannerm/ddpo's 50 objects) and text
/// files, one prompt per line.
/// </summary>
public static class PromptLists
{
    private const string ResourcePrefix = "Ddpo.Prompts.Data.";
    private static readonly ConcurrentDictionary<string, string[]> Cache = new();

    /// <summary>The names of the shipped lists.</summary>
    public static IReadOnlyList<string> Builtin { get; } = typeof(PromptLists).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal))
        .Select(n => n[ResourcePrefix.Length..])
        .Order(StringComparer.Ordinal)
        .ToArray();

    /// <summary>
    /// The lines of <paramref name="nameOrPath"/>, trimmed, blank lines skipped: an existing file first,
    /// else a shipped list of that name (as ddpo-pytorch looks in its assets folder).
    /// </summary>
    public static IReadOnlyList<string> Load(string nameOrPath)
    {
        if (File.Exists(nameOrPath))
        {
            return Clean(Utf8Text.ReadFile(nameOrPath, message => new ConfigException(message)).Split('\n'), nameOrPath);
        }
        return Cache.GetOrAdd(nameOrPath, name =>
        {
            using var stream = typeof(PromptLists).Assembly.GetManifestResourceStream(ResourcePrefix + name)
                ?? throw new ConfigException($"prompt list '{name}': no such file, and not a shipped list ({string.Join(", ", Builtin)})");
            using var reader = new StreamReader(stream);
            return Clean(reader.ReadToEnd().Split('\n'), name);
        });
    }

    private static string[] Clean(IEnumerable<string> lines, string source)
    {
        var result = lines.Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        if (result.Length == 0) throw new ConfigException($"prompt list '{source}': holds no prompts");
        return result;
    }
}
