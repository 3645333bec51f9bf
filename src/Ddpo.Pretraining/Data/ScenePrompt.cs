namespace Ddpo.Data;

/// <summary>What one synthetic scene shows: an animal of <see cref="SpriteCatalog.Animals"/>, optionally doing an activity.</summary>
/// <param name="Animal">An animal word, e.g. <c>cat</c>.</param>
/// <param name="Activity">An activity phrase of <see cref="SpriteCatalog.Activities"/> (e.g. <c>riding a bike</c>), or null.</param>
internal sealed record ScenePrompt(string Animal, string? Activity = null)
{
    /// <summary>The caption, exactly as the paper's prompts: "a cat", "an ant", "a cat riding a bike".</summary>
    public string Caption => Activity is null ? EnglishArticle.WithArticle(Animal) : $"{EnglishArticle.WithArticle(Animal)} {Activity}";

    /// <inheritdoc/>
    public override string ToString() => Caption;

    /// <summary>
    /// Parses "a(n) ANIMAL" or "a(n) ANIMAL ACTIVITY" (the article is optional, case and extra spaces are ignored).
    /// Throws <see cref="ArgumentException"/> naming the prompt when the animal or activity has no sprite.
    /// </summary>
    public static ScenePrompt Parse(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var words = prompt.Trim().ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        if (words.Count > 0 && (words[0] == "a" || words[0] == "an")) words.RemoveAt(0);
        if (words.Count == 0)
        {
            throw new ArgumentException($"prompt '{prompt}': expected 'a(n) ANIMAL [ACTIVITY]'", nameof(prompt));
        }
        var animal = words[0];
        if (!SpriteCatalog.Animals.ContainsKey(animal))
        {
            throw new ArgumentException($"prompt '{prompt}': unknown animal '{animal}'; expected one of {string.Join(", ", SpriteCatalog.AnimalNames)}", nameof(prompt));
        }
        if (words.Count == 1) return new ScenePrompt(animal);
        var activity = string.Join(' ', words.Skip(1));
        if (!SpriteCatalog.Activities.ContainsKey(activity))
        {
            throw new ArgumentException($"prompt '{prompt}': unknown activity '{activity}'; expected one of {string.Join(", ", SpriteCatalog.ActivityNames)}", nameof(prompt));
        }
        return new ScenePrompt(animal, activity);
    }
}
