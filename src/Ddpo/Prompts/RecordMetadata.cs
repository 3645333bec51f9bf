using System.Collections;
using System.Text.Json.Nodes;

namespace Ddpo.Prompts;

/// <summary>
/// The metadata of a prompt record (<see cref="PromptRecordSource"/>): each field as a string (a JSON string as it is,
/// anything else as its JSON text) and, for rewards that send the record on (<c>geneval</c>), each field's JSON as read.
/// </summary>
internal sealed class RecordMetadata : IReadOnlyDictionary<string, string>
{
    private readonly Dictionary<string, string> _text = [];
    private readonly Dictionary<string, JsonNode?> _json = [];

    /// <summary>Adds <paramref name="key"/> with its JSON value (cloned, so the record can be reused).</summary>
    public void Add(string key, JsonNode? value)
    {
        _text[key] = AsText(value);
        _json[key] = value?.DeepClone();
    }

    /// <summary>The metadata string of a JSON value: a string as it is, anything else as its JSON text.</summary>
    public static string AsText(JsonNode? value) =>
        value is JsonValue v && v.TryGetValue<string>(out var s) ? s : value?.ToJsonString() ?? "null";

    /// <summary>
    /// The JSON of <paramref name="metadata"/>'s fields: as read when it is a <see cref="RecordMetadata"/>; otherwise
    /// (metadata from a prompt list, or restored from saved samples) each string that is JSON text of an array or an
    /// object is read back as JSON, and every other value stays a string.
    /// </summary>
    public static JsonObject ToJson(IReadOnlyDictionary<string, string> metadata)
    {
        var o = new JsonObject();
        if (metadata is RecordMetadata record)
        {
            foreach (var (k, v) in record._json) o[k] = v?.DeepClone();
            return o;
        }
        foreach (var (k, v) in metadata) o[k] = Reparse(v);
        return o;
    }

    private static JsonNode? Reparse(string text)
    {
        var t = text.TrimStart();
        if (t.StartsWith('[') || t.StartsWith('{'))
        {
            try
            {
                return JsonNode.Parse(text);
            }
            catch (System.Text.Json.JsonException)
            {
                // Not JSON after all: the string itself.
            }
        }
        return JsonValue.Create(text);
    }

    /// <inheritdoc/>
    public string this[string key] => _text[key];

    /// <inheritdoc/>
    public IEnumerable<string> Keys => _text.Keys;

    /// <inheritdoc/>
    public IEnumerable<string> Values => _text.Values;

    /// <inheritdoc/>
    public int Count => _text.Count;

    /// <inheritdoc/>
    public bool ContainsKey(string key) => _text.ContainsKey(key);

    /// <inheritdoc/>
    public bool TryGetValue(string key, out string value) => _text.TryGetValue(key, out value!);

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => _text.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
