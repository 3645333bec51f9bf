using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Prompts;

/// <summary>
/// Creates prompt sources by <c>prompt_fn</c> name:
/// <c>imagenet_all</c> (1000 ImageNet classes), <c>imagenet_animals</c> (the first 398), <c>imagenet_dogs</c> (151..268),
/// <c>simple_animals</c> (45, the bare word as ddpo-pytorch), <c>animals</c> (the 45 as "a cat", "an owl"; splits
/// <c>animals_train</c> / <c>animals_heldout</c>), <c>nouns_activities</c> (kwargs <c>nouns_file</c>, <c>activities_file</c>),
/// <c>everyday_objects</c> (50 objects as "a toaster", "an umbrella": jannerm/ddpo's list, for the paper's test
/// of generalisation beyond animals), <c>file:PATH</c> (one prompt per line; a <c>.jsonl</c> or <c>.json</c> file holds
/// prompts with metadata, e.g. the questions and answers of <c>vlm_strict_satisfaction</c>: <see cref="PromptRecordSource"/>),
/// and the held-out splits <c>simple_animals_train</c>,
/// <c>simple_animals_heldout</c> (kwarg <c>heldout_fraction</c>), <c>nouns_activities_train</c>,
/// <c>nouns_activities_heldout_animals</c>, <c>nouns_activities_heldout_activities</c>
/// (kwargs <c>nouns_file</c>, <c>activities_file</c>, <c>heldout_fraction</c>, <c>heldout_activities</c>).
/// </summary>
public static class PromptSources
{
    /// <summary>The prefix of a prompt file source: <c>file:PATH</c>.</summary>
    public const string FilePrefix = "file:";

    private const string NounsFile = "nouns_file";
    private const string ActivitiesFile = "activities_file";
    private const string HeldOutFraction = "heldout_fraction";
    private const string HeldOutActivities = "heldout_activities";

    /// <summary>The metadata key of an everyday object (e.g. <c>object</c> = "toaster").</summary>
    public const string ObjectKey = "object";

    private sealed record Entry(string[] Kwargs, Func<Args, IPromptSource> Create);

    private static readonly Dictionary<string, Entry> Entries = new()
    {
        ["imagenet_all"] = new([], _ => Imagenet(0, 1000)),
        ["imagenet_animals"] = new([], _ => Imagenet(0, 398)),
        ["imagenet_dogs"] = new([], _ => Imagenet(151, 269)),
        ["simple_animals"] = new([], _ => new ListPromptSource(PromptLists.Load("simple_animals.txt"), NounsActivitiesSource.AnimalKey)),
        ["simple_animals_train"] = new([HeldOutFraction], a => new ListPromptSource(AnimalSplit(a).Train, NounsActivitiesSource.AnimalKey)),
        ["simple_animals_heldout"] = new([HeldOutFraction], a => new ListPromptSource(AnimalSplit(a).HeldOut, NounsActivitiesSource.AnimalKey)),
        ["animals"] = new([], _ => Animals(PromptLists.Load("simple_animals.txt"))),
        ["animals_train"] = new([HeldOutFraction], a => Animals(AnimalSplit(a).Train)),
        ["animals_heldout"] = new([HeldOutFraction], a => Animals(AnimalSplit(a).HeldOut)),
        ["everyday_objects"] = new([], _ => new ListPromptSource(
            PromptLists.Load("everyday_objects.txt").Select(o => o.ToLowerInvariant()), ObjectKey, Articles.WithArticle)),
        ["nouns_activities"] = new([NounsFile, ActivitiesFile], a => new NounsActivitiesSource(Nouns(a), Activities(a))),
        ["nouns_activities_train"] = new([NounsFile, ActivitiesFile, HeldOutFraction, HeldOutActivities], a => Split(a).Train),
        ["nouns_activities_heldout_animals"] = new([NounsFile, ActivitiesFile, HeldOutFraction, HeldOutActivities], a => Split(a).HeldOutAnimals),
        ["nouns_activities_heldout_activities"] = new([NounsFile, ActivitiesFile, HeldOutFraction, HeldOutActivities], a => Split(a).HeldOutActivities),
    };

    /// <summary>The built-in source names (besides <c>file:PATH</c>).</summary>
    public static IReadOnlyList<string> Names { get; } = Entries.Keys.ToArray();

    /// <summary>True for a built-in name or <c>file:PATH</c> (the file is only checked by <see cref="Create"/>).</summary>
    /// <remarks>A prompt source given in C# code is recorded as <c>code:NAME</c> (<see cref="CodeObjects"/>): known, but not creatable.</remarks>
    public static bool IsKnown(string name) =>
        Entries.ContainsKey(name) || (name.StartsWith(FilePrefix, StringComparison.Ordinal) && name.Length > FilePrefix.Length)
        || CodeObjects.IsCodeObject(name);

    /// <summary>
    /// Creates the source <paramref name="name"/> with <paramref name="kwargs"/> (<c>prompt_fn_kwargs</c>);
    /// an unknown name or argument, or a missing file, is a <see cref="ConfigException"/>.
    /// </summary>
    public static IPromptSource Create(string name, IReadOnlyDictionary<string, object>? kwargs = null)
    {
        kwargs ??= new Dictionary<string, object>();
        if (CodeObjects.IsCodeObject(name))
        {
            throw CodeObjects.NotReconstructible("prompt_fn", name, "give the same IPromptSource in code, or name a prompt set: --prompts NAME or file:PATH");
        }
        if (name.StartsWith(FilePrefix, StringComparison.Ordinal) && name.Length > FilePrefix.Length)
        {
            RejectUnknown(name, kwargs, []);
            var path = name[FilePrefix.Length..];
            if (!File.Exists(path)) throw new ConfigException($"prompt_fn: prompt file '{path}' not found");
            return PromptRecordSource.Handles(path) ? PromptRecordSource.Load(path) : new ListPromptSource(PromptLists.Load(path));
        }
        if (!Entries.TryGetValue(name, out var entry))
        {
            throw new ConfigException($"prompt_fn: unknown prompt function '{name}' (expected one of {string.Join(", ", Names)}, or file:PATH)");
        }
        RejectUnknown(name, kwargs, entry.Kwargs);
        return entry.Create(new Args(name, kwargs));
    }

    private static void RejectUnknown(string name, IReadOnlyDictionary<string, object> kwargs, string[] accepted)
    {
        foreach (var key in kwargs.Keys)
        {
            if (!accepted.Contains(key))
            {
                var expected = accepted.Length == 0 ? "it takes no arguments" : $"it accepts {string.Join(", ", accepted)}";
                throw new ConfigException($"prompt_fn_kwargs.{key}: not an argument of prompt_fn '{name}' ({expected})");
            }
        }
    }

    private static ListPromptSource Imagenet(int low, int high) =>
        new(PromptLists.Load("imagenet_classes.txt").Take(high).Skip(low));

    private static ListPromptSource Animals(IEnumerable<string> animals) =>
        new(animals, NounsActivitiesSource.AnimalKey, Articles.WithArticle);

    private static IReadOnlyList<string> Nouns(Args a) => PromptLists.Load(a.String(NounsFile, "simple_animals.txt"));

    private static IReadOnlyList<string> Activities(Args a) => PromptLists.Load(a.String(ActivitiesFile, "activities.txt"));

    private static ListSplit AnimalSplit(Args a) =>
        HeldOut.Split(PromptLists.Load("simple_animals.txt"), a.Fraction(HeldOutFraction, HeldOut.DefaultAnimalFraction));

    private static NounsActivitiesSplit Split(Args a) =>
        HeldOut.NounsActivities(Nouns(a), Activities(a),
            a.Fraction(HeldOutFraction, HeldOut.DefaultAnimalFraction),
            a.Int(HeldOutActivities, HeldOut.DefaultActivityCount));

    private sealed record Args(string Name, IReadOnlyDictionary<string, object> Values)
    {
        public string String(string key, string fallback) => Values.TryGetValue(key, out var v)
            ? v as string ?? throw Wrong(key, "a string", v)
            : fallback;

        public double Fraction(string key, double fallback)
        {
            if (!Values.TryGetValue(key, out var v)) return fallback;
            double d = v switch { double x => x, long l => l, int i => i, _ => throw Wrong(key, "a number", v) };
            return d is > 0 and < 1 ? d : throw Wrong(key, "a number in (0, 1)", v);
        }

        public int Int(string key, int fallback)
        {
            if (!Values.TryGetValue(key, out var v)) return fallback;
            long n = v switch { long l => l, int i => i, _ => throw Wrong(key, "an integer", v) };
            return n >= 1 && n < int.MaxValue ? (int)n : throw Wrong(key, "an integer >= 1", v);
        }

        private ConfigException Wrong(string key, string expected, object got) =>
            new($"prompt_fn_kwargs.{key}: expected {expected} for prompt_fn '{Name}', got {got}");
    }
}
