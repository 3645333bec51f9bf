namespace Ddpo.Prompts;

/// <summary>
/// "a"/"an" + animal + " " + activity, both drawn uniformly (ddpo-pytorch's <c>nouns_activities</c>);
/// metadata <c>animal</c> and <c>activity</c>.
/// </summary>
internal sealed class NounsActivitiesSource : IPromptSource
{
    /// <summary>The metadata key of the animal.</summary>
    public const string AnimalKey = "animal";

    /// <summary>The metadata key of the activity.</summary>
    public const string ActivityKey = "activity";

    private readonly string[] _animals;
    private readonly string[] _activities;
    private readonly string[] _all;

    /// <summary>A source over every animal and activity pair.</summary>
    public NounsActivitiesSource(IEnumerable<string> animals, IEnumerable<string> activities)
    {
        _animals = animals.ToArray();
        _activities = activities.ToArray();
        if (_animals.Length == 0) throw new ArgumentException("needs at least one animal", nameof(animals));
        if (_activities.Length == 0) throw new ArgumentException("needs at least one activity", nameof(activities));
        _all = _animals.SelectMany(a => _activities.Select(act => Compose(a, act))).ToArray();
    }

    /// <summary>The animals drawn from.</summary>
    public IReadOnlyList<string> Animals => _animals;

    /// <summary>The activities drawn from.</summary>
    public IReadOnlyList<string> Activities => _activities;

    /// <inheritdoc/>
    public IReadOnlyList<string> All => _all;

    /// <summary>The prompt for one pair, e.g. "an owl riding a bike".</summary>
    public static string Compose(string animal, string activity) => $"{Articles.WithArticle(animal)} {activity.Trim()}";

    /// <inheritdoc/>
    public IReadOnlyList<PromptSample> Samples =>
        _animals.SelectMany(a => _activities.Select(act => Sample(a, act))).ToArray();

    /// <inheritdoc/>
    public PromptSample Next(Random rng)
    {
        var animal = _animals[rng.Next(_animals.Length)];
        var activity = _activities[rng.Next(_activities.Length)];
        return Sample(animal, activity);
    }

    private static PromptSample Sample(string animal, string activity) =>
        new(Compose(animal, activity), new Dictionary<string, string>
        {
            [AnimalKey] = animal,
            [ActivityKey] = activity,
        });
}
