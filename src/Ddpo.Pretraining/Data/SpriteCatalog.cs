namespace Ddpo.Data;

/// <summary>
/// The emoji drawn for each animal of <c>simple_animals.txt</c> and for the object of each activity of
/// <c>activities.txt</c>. The sprites committed under <c>Data/Sprites</c> are rendered from these code
/// points (see <see cref="SpriteRenderer"/>); a sprite's name is the animal word or the activity with
/// spaces replaced by underscores (<c>cat.png</c>, <c>riding_a_bike.png</c>).
/// </summary>
/// <remarks>
/// Close substitutes, where Unicode has no emoji of the animal itself:
/// squirrel = U+1F43F CHIPMUNK; bird = U+1F426 BIRD (a generic small bird);
/// washing the dishes = U+1F37D FORK AND KNIFE WITH PLATE (no sink or dish-washing emoji exists);
/// playing chess = U+265F BLACK CHESS PAWN.
/// Head-only emoji are used where the full-body one is unclear at 32 px or does not exist:
/// lion (U+1F981), bear (U+1F43B), fox (U+1F98A), wolf (U+1F43A), frog (U+1F438).
/// </remarks>
internal static class SpriteCatalog
{
    private static readonly (string Name, string Emoji)[] AnimalTable =
    [
        ("cat", "\U0001F408"),       // CAT
        ("dog", "\U0001F415"),       // DOG
        ("horse", "\U0001F40E"),     // HORSE
        ("monkey", "\U0001F412"),    // MONKEY
        ("rabbit", "\U0001F407"),    // RABBIT
        ("zebra", "\U0001F993"),     // ZEBRA
        ("spider", "\U0001F577"),    // SPIDER
        ("bird", "\U0001F426"),      // BIRD
        ("sheep", "\U0001F411"),     // EWE (the sheep emoji)
        ("deer", "\U0001F98C"),      // DEER
        ("cow", "\U0001F404"),       // COW
        ("goat", "\U0001F410"),      // GOAT
        ("lion", "\U0001F981"),      // LION FACE (no full-body lion emoji)
        ("tiger", "\U0001F405"),     // TIGER
        ("bear", "\U0001F43B"),      // BEAR FACE (no full-body bear emoji)
        ("raccoon", "\U0001F99D"),   // RACCOON
        ("fox", "\U0001F98A"),       // FOX FACE (no full-body fox emoji)
        ("wolf", "\U0001F43A"),      // WOLF FACE (no full-body wolf emoji)
        ("lizard", "\U0001F98E"),    // LIZARD
        ("beetle", "\U0001FAB2"),    // BEETLE
        ("ant", "\U0001F41C"),       // ANT
        ("butterfly", "\U0001F98B"), // BUTTERFLY
        ("fish", "\U0001F41F"),      // FISH
        ("shark", "\U0001F988"),     // SHARK
        ("whale", "\U0001F40B"),     // WHALE
        ("dolphin", "\U0001F42C"),   // DOLPHIN
        ("squirrel", "\U0001F43F"),  // CHIPMUNK (substitute: no squirrel emoji)
        ("mouse", "\U0001F401"),     // MOUSE
        ("rat", "\U0001F400"),       // RAT
        ("snake", "\U0001F40D"),     // SNAKE
        ("turtle", "\U0001F422"),    // TURTLE
        ("frog", "\U0001F438"),      // FROG FACE (no full-body frog emoji)
        ("chicken", "\U0001F414"),   // CHICKEN
        ("duck", "\U0001F986"),      // DUCK
        ("goose", "\U0001FABF"),     // GOOSE (Emoji 15.0)
        ("bee", "\U0001F41D"),       // HONEYBEE
        ("pig", "\U0001F416"),       // PIG
        ("turkey", "\U0001F983"),    // TURKEY
        ("fly", "\U0001FAB0"),       // FLY
        ("llama", "\U0001F999"),     // LLAMA
        ("camel", "\U0001F42A"),     // DROMEDARY CAMEL
        ("bat", "\U0001F987"),       // BAT
        ("gorilla", "\U0001F98D"),   // GORILLA
        ("hedgehog", "\U0001F994"),  // HEDGEHOG
        ("kangaroo", "\U0001F998"),  // KANGAROO
    ];

    private static readonly (string Name, string Emoji)[] ActivityTable =
    [
        ("washing the dishes", "\U0001F37D"), // FORK AND KNIFE WITH PLATE (substitute: no dish-washing emoji)
        ("riding a bike", "\U0001F6B2"),      // BICYCLE
        ("playing chess", "\u265F"),          // BLACK CHESS PAWN
    ];

    /// <summary>Animal word to the emoji (one or more code points, no variation selector) drawn for it.</summary>
    public static IReadOnlyDictionary<string, string> Animals { get; } = AnimalTable.ToDictionary(e => e.Name, e => e.Emoji);

    /// <summary>Activity phrase to the emoji of its object.</summary>
    public static IReadOnlyDictionary<string, string> Activities { get; } = ActivityTable.ToDictionary(e => e.Name, e => e.Emoji);

    /// <summary>The animals in the order of <c>simple_animals.txt</c>.</summary>
    public static IReadOnlyList<string> AnimalNames { get; } = AnimalTable.Select(e => e.Name).ToArray();

    /// <summary>The activities in the order of <c>activities.txt</c>.</summary>
    public static IReadOnlyList<string> ActivityNames { get; } = ActivityTable.Select(e => e.Name).ToArray();

    /// <summary>The sprite name (file name without <c>.png</c>) of an animal or activity: spaces become underscores.</summary>
    public static string SpriteName(string animalOrActivity) => animalOrActivity.Replace(' ', '_');

    /// <summary>Every sprite name with its emoji, animals first.</summary>
    public static IEnumerable<(string Name, string Emoji)> AllSprites() =>
        AnimalTable.Concat(ActivityTable).Select(e => (SpriteName(e.Name), e.Emoji));
}
