using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ddpo.Models.Loading;

/// <summary>
/// JSON parsing for the files we read: a property repeated in one object is a <see cref="JsonException"/> at
/// parse time (by default <see cref="JsonObject"/> accepts the text and then throws an unnamed
/// <see cref="ArgumentException"/> on first use, far from the file).
/// </summary>
internal static class StrictJson
{
    private static readonly JsonDocumentOptions Options = new() { AllowDuplicateProperties = false };

    /// <summary>Parses <paramref name="text"/> into a node tree; malformed text or a repeated property is a <see cref="JsonException"/>.</summary>
    public static JsonNode? Parse(string text) => JsonNode.Parse(text, documentOptions: Options);
}
