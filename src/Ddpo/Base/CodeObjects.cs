namespace Ddpo.Base;

/// <summary>
/// How <c>RUN/config.toml</c> records a prompt source or reward that a C# program gave as an object
/// (<c>DdpoTrainingOptions</c>): <c>"code:NAME"</c>, e.g. <c>reward_fn = "code:brightness"</c>. The name
/// says what ran; the prefix says that no config can rebuild it, and every place that would (a reward registry,
/// <c>PromptSources.Create</c>, <c>ddpo eval</c>) says so instead of guessing.
/// </summary>
internal static class CodeObjects
{
    /// <summary>The prefix of a value that names an object given in code.</summary>
    public const string Prefix = "code:";

    /// <summary>The config value recording an object called <paramref name="name"/>.</summary>
    public static string Name(string name) => Prefix + name;

    /// <summary>True when <paramref name="value"/> records an object given in code.</summary>
    public static bool IsCodeObject(string? value) =>
        value is not null && value.StartsWith(Prefix, StringComparison.Ordinal) && value.Length > Prefix.Length;

    /// <summary>The error for rebuilding <paramref name="value"/> of <paramref name="key"/> from a config.</summary>
    public static ConfigException NotReconstructible(string key, string value, string hint) =>
        new($"{key}: '{value}' was an object given in C# code when the run was made; a config cannot rebuild it ({hint})");
}
