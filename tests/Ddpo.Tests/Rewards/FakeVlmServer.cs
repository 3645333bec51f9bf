using System.Text.Json.Nodes;
using SkiaSharp;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>
/// An OpenAI-compatible chat-completions server that "sees" which animal an image shows: test images are filled
/// with a red level that encodes an animal (<see cref="Image"/>), and the server decodes the PNG or JPEG from the
/// data URL and answers from that. It validates the request shape and records what it was asked.
/// </summary>
public static class FakeVlm
{
    /// <summary>The animals an image can encode.</summary>
    public static readonly string[] Animals = ["cat", "dog", "horse", "penguin"];

    /// <summary>Images [n, 3, 16, 16] whose red level encodes <paramref name="animals"/> (indices into <see cref="Animals"/>).</summary>
    public static Tensor Image(params int[] animals)
    {
        var images = zeros(animals.Length, 3, 16, 16);
        for (int i = 0; i < animals.Length; i++)
        {
            images[i, 0].fill_((40 * animals[i] + 20) / 255.0);
            images[i, 1].fill_(0.5);
        }
        return images;
    }

    /// <summary>The answer text for a question about an image showing <paramref name="animal"/>.</summary>
    public static string Answer(string question, string animal) =>
        question.Contains("what is going on", StringComparison.OrdinalIgnoreCase) ? $"A {animal} is riding a bicycle down a street."
        : question.Contains("animal", StringComparison.OrdinalIgnoreCase) ? $"It is a {animal}."
        : question.Contains("bike", StringComparison.OrdinalIgnoreCase) ? "Yes, it is."
        : "I am not sure.";

    /// <summary>Handles <c>/v1/models</c> and <c>/v1/chat/completions</c>; <paramref name="answer"/> may replace the content.</summary>
    public static (int, string) Handle(SeenRequest r, Func<string, string, JsonNode?>? answer = null)
    {
        if (r.Method == "GET" && r.Path == "/v1/models")
        {
            return (200, """{"object": "list", "data": [{"id": "fake-llava", "object": "model"}]}""");
        }
        if (r.Method != "POST" || r.Path != "/v1/chat/completions") return (404, $"no route {r.Method} {r.Path}");
        var req = JsonNode.Parse(r.Body)!;
        var parts = req["messages"]![0]!["content"]!.AsArray();
        var question = parts.First(p => p!["type"]!.GetValue<string>() == "text")!["text"]!.GetValue<string>();
        var url = parts.First(p => p!["type"]!.GetValue<string>() == "image_url")!["image_url"]!["url"]!.GetValue<string>();
        if (!url.StartsWith("data:image/", StringComparison.Ordinal)) return (400, "expected a data URL");
        var bytes = Convert.FromBase64String(url[(url.IndexOf(',') + 1)..]);
        using var bitmap = SKBitmap.Decode(bytes);
        int k = (int)Math.Round((bitmap.GetPixel(8, 8).Red - 20) / 40.0);
        var animal = Animals[Math.Clamp(k, 0, Animals.Length - 1)];
        var content = answer is null ? JsonValue.Create(Answer(question, animal)) : answer(question, animal);
        var response = new JsonObject
        {
            ["id"] = "chatcmpl-test",
            ["object"] = "chat.completion",
            ["model"] = req["model"]!.GetValue<string>(),
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = content },
                ["finish_reason"] = "stop",
            }),
        };
        return (200, response.ToJsonString());
    }
}
