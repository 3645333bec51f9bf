using System.Globalization;
using System.Text.RegularExpressions;

namespace Ddpo.Rewards.Alignment;

/// <summary>The question templates of <c>vlm_score</c>: a preset name or a text with <c>{prompt}</c>.</summary>
internal static class VlmScoreTemplates
{
    /// <summary>The placeholder replaced by the image's prompt.</summary>
    public const string Placeholder = "{prompt}";

    /// <summary>The preset name of <see cref="UnifiedReward"/>.</summary>
    public const string UnifiedRewardName = "unifiedreward";

    /// <summary>
    /// UnifiedReward's image-generation rating question, word for word as Flow-GRPO's <c>unifiedreward_score_sglang</c>
    /// asks UnifiedReward-7b-v1.5 (flow_grpo/rewards.py at fc412d2; the image part goes before this text, as there).
    /// </summary>
    public const string UnifiedReward =
        "<image>\nYou are given a text caption and a generated image based on that caption. Your task is to evaluate this image based on two key criteria:\n" +
        "1. Alignment with the Caption: Assess how well this image aligns with the provided caption. Consider the accuracy of depicted objects, their relationships, and attributes as described in the caption.\n" +
        "2. Overall Image Quality: Examine the visual quality of this image, including clarity, detail preservation, color accuracy, and overall aesthetic appeal.\n" +
        "Based on the above criteria, assign a score from 1 to 5 after 'Final Score:'.\n" +
        "Your task is provided as follows:\nText Caption: [{prompt}]";

    /// <summary>The presets by name.</summary>
    public static IReadOnlyDictionary<string, string> Presets { get; } = new Dictionary<string, string> { [UnifiedRewardName] = UnifiedReward };

    /// <summary>The template a config value names: a preset's text, or the value itself.</summary>
    public static string Resolve(string value) => Presets.TryGetValue(value, out var preset) ? preset : value;

    /// <summary>Null when <paramref name="value"/> is a preset name or a template with <c>{prompt}</c>; else what is wrong.</summary>
    public static string? Check(string value) =>
        Presets.ContainsKey(value) || value.Contains(Placeholder, StringComparison.Ordinal) ? null
            : $"must be a preset ({string.Join(", ", Presets.Keys)}) or a question containing {Placeholder}, got '{value}'";

    /// <summary>The question about an image of <paramref name="prompt"/>.</summary>
    public static string Fill(string template, string prompt) => template.Replace(Placeholder, prompt, StringComparison.Ordinal);
}

/// <summary>The range of a VLM's rating (<c>1-5</c> or <c>0-10</c>), and its strict reading from an answer.</summary>
internal sealed partial record VlmScoreScale(int Min, int Max)
{
    /// <summary>1 to 5 (UnifiedReward).</summary>
    public static VlmScoreScale OneToFive { get; } = new(1, 5);

    /// <summary>0 to 10.</summary>
    public static VlmScoreScale ZeroToTen { get; } = new(0, 10);

    /// <summary>Parses <c>1-5</c> or <c>0-10</c>.</summary>
    public static bool TryParse(string text, out VlmScoreScale scale)
    {
        scale = text switch { "1-5" => OneToFive, "0-10" => ZeroToTen, _ => null! };
        return scale is not null;
    }

    /// <summary>The score mapped to [0, 1]: <c>(s - Min) / (Max - Min)</c>.</summary>
    public double Normalise(double score) => (score - Min) / (Max - Min);

    /// <summary>
    /// The rating in an answer: the number right after the first "Final Score:" (any case; UnifiedReward's answers
    /// end so), else the answer when it is nothing but one number (a trailing '.' allowed). A number outside
    /// [Min, Max], or an answer with neither, gives null and says why.
    /// </summary>
    public double? Read(string answer, out string problem)
    {
        string? number;
        var marked = FinalScore().Match(answer);
        if (marked.Success)
        {
            number = marked.Groups["n"].Success ? marked.Groups["n"].Value : null;
            if (number is null)
            {
                problem = "no number after 'Final Score:'";
                return null;
            }
        }
        else
        {
            var bare = BareNumber().Match(answer);
            if (!bare.Success)
            {
                problem = "no 'Final Score: N' and the answer is not a number";
                return null;
            }
            number = bare.Groups["n"].Value;
        }
        double value = double.Parse(number, NumberStyles.Float, CultureInfo.InvariantCulture);
        if (value < Min || value > Max)
        {
            problem = $"score {number} is outside {Min}-{Max}";
            return null;
        }
        problem = "";
        return value;
    }

    [GeneratedRegex(@"final\s+score\s*:\s*\**\s*(?<n>[+-]?\d+(?:\.\d+)?)?", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex FinalScore();

    [GeneratedRegex(@"^\s*(?<n>[+-]?\d+(?:\.\d+)?)\s*\.?\s*$", RegexOptions.CultureInvariant)]
    private static partial Regex BareNumber();
}
