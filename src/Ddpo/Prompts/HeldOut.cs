namespace Ddpo.Prompts;

/// <summary>A list cut in two: items trained on and items kept unseen for evaluation.</summary>
internal sealed record ListSplit(IReadOnlyList<string> Train, IReadOnlyList<string> HeldOut);

/// <summary>The prompt sources of a nouns-activities split.</summary>
/// <param name="Train">Training animals x training activities.</param>
/// <param name="HeldOutAnimals">Unseen animals x training activities.</param>
/// <param name="HeldOutActivities">Training animals x unseen activities.</param>
/// <param name="Animals">The animal split.</param>
/// <param name="Activities">The activity split.</param>
internal sealed record NounsActivitiesSplit(
    NounsActivitiesSource Train,
    NounsActivitiesSource HeldOutAnimals,
    NounsActivitiesSource HeldOutActivities,
    ListSplit Animals,
    ListSplit Activities);

/// <summary>
/// Deterministic held-out splits for measuring generalisation to unseen prompts: the last part of a
/// list is held out (no randomness, so every run and machine agrees).
/// </summary>
internal static class HeldOut
{
    /// <summary>The default fraction of animals held out.</summary>
    public const double DefaultAnimalFraction = 0.2;

    /// <summary>The default number of activities held out.</summary>
    public const int DefaultActivityCount = 1;

    /// <summary>
    /// Holds out the last <c>round(fraction * n)</c> items (at least 1, leaving at least 1 to train on).
    /// </summary>
    public static ListSplit Split(IReadOnlyList<string> items, double fraction = DefaultAnimalFraction)
    {
        if (!(fraction > 0 && fraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "held-out fraction must be in (0, 1)");
        }
        return SplitLast(items, (int)Math.Round(fraction * items.Count, MidpointRounding.AwayFromZero));
    }

    /// <summary>Holds out the last <paramref name="count"/> items (clamped to [1, n - 1]).</summary>
    public static ListSplit SplitLast(IReadOnlyList<string> items, int count)
    {
        if (items.Count < 2)
        {
            throw new ArgumentException($"a split needs at least 2 items, got {items.Count}", nameof(items));
        }
        count = Math.Clamp(count, 1, items.Count - 1);
        int cut = items.Count - count;
        return new ListSplit(items.Take(cut).ToArray(), items.Skip(cut).ToArray());
    }

    /// <summary>Splits animals by <paramref name="animalFraction"/> and holds out the last <paramref name="activityCount"/> activities.</summary>
    public static NounsActivitiesSplit NounsActivities(
        IReadOnlyList<string> animals,
        IReadOnlyList<string> activities,
        double animalFraction = DefaultAnimalFraction,
        int activityCount = DefaultActivityCount)
    {
        var a = Split(animals, animalFraction);
        var act = SplitLast(activities, activityCount);
        return new NounsActivitiesSplit(
            new NounsActivitiesSource(a.Train, act.Train),
            new NounsActivitiesSource(a.HeldOut, act.Train),
            new NounsActivitiesSource(a.Train, act.HeldOut),
            a,
            act);
    }
}
