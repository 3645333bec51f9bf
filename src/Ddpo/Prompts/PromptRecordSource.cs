using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Prompts;

/// <summary>
/// Prompts with metadata read from a JSON Lines file (one object per line) or a JSON file (an array of
/// objects), drawn uniformly: <c>{"prompt": "two cats", "questions": ["How many cats are there?"], "answers": ["two"]}</c>.
/// <c>prompt</c> is required; every other field becomes the sample's metadata, passed to the reward (a string
/// as it is, anything else as its JSON text), which is how <c>vlm_strict_satisfaction</c> gets its
/// <c>questions</c> and <c>answers</c>.
/// </summary>
public sealed class PromptRecordSource : IPromptSource
{
    /// <summary>The field holding the prompt text.</summary>
    public const string PromptField = "prompt";

    private readonly PromptSample[] _samples;

    /// <summary>A source over <paramref name="samples"/> (at least one).</summary>
    public PromptRecordSource(IEnumerable<PromptSample> samples)
    {
        _samples = samples.ToArray();
        if (_samples.Length == 0) throw new ArgumentException("a prompt source needs at least one prompt", nameof(samples));
    }

    /// <summary>True when <paramref name="path"/> names a file this source reads (<c>.jsonl</c> or <c>.json</c>).</summary>
    public static bool Handles(string path) =>
        path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".json", StringComparison.OrdinalIgnoreCase);

    /// <summary>Reads <paramref name="path"/>; a malformed record is a <see cref="ConfigException"/> naming the file and line or item.</summary>
    public static PromptRecordSource Load(string path)
    {
        var samples = new List<PromptSample>();
        if (path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
        {
            var lines = File.ReadAllLines(path);
            for (int i = 0; i < lines.Length; i++)
            {
                if (lines[i].Trim().Length == 0) continue;
                samples.Add(Parse(ParseJson(lines[i], $"{path} line {i + 1}"), $"{path} line {i + 1}"));
            }
        }
        else
        {
            var root = ParseJson(File.ReadAllText(path), path) as JsonArray
                ?? throw new ConfigException($"{path}: expected a JSON array of objects with a \"{PromptField}\" field");
            for (int i = 0; i < root.Count; i++) samples.Add(Parse(root[i], $"{path} item {i}"));
        }
        if (samples.Count == 0) throw new ConfigException($"prompt file '{path}': holds no prompts");
        return new PromptRecordSource(samples);
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> All => _samples.Select(s => s.Prompt).ToArray();

    /// <inheritdoc/>
    public IReadOnlyList<PromptSample> Samples => _samples;

    /// <inheritdoc/>
    public PromptSample Next(Random rng) => _samples[rng.Next(_samples.Length)];

    private static JsonNode? ParseJson(string text, string where)
    {
        try
        {
            // A repeated field is an error here, not a failure when the record is first read.
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{where}: not valid JSON ({e.Message})");
        }
    }

    private static PromptSample Parse(JsonNode? node, string where)
    {
        if (node is not JsonObject record) throw new ConfigException($"{where}: expected a JSON object with a \"{PromptField}\" field");
        if (record[PromptField] is not JsonValue value || !value.TryGetValue<string>(out var prompt) || prompt.Trim().Length == 0)
        {
            throw new ConfigException($"{where}: \"{PromptField}\" must be a non-empty string");
        }
        // Strings for the rewards that read fields, and each field's JSON for those that send the record on (geneval).
        var metadata = new RecordMetadata();
        foreach (var (key, field) in record)
        {
            if (key == PromptField) continue;
            metadata.Add(key, field);
        }
        return new PromptSample(prompt.Trim(), metadata);
    }
}
