using System.CommandLine;
using Ddpo.Config;

namespace Ddpo.Cli.Commands;

/// <summary>
/// The options that make a run's config (<c>--preset</c>, <c>--config</c>, <c>--model</c>, <c>--set</c>) and their
/// layering, shared by <c>ddpo train</c> and <c>ddpo config</c> so that the printed config is the one a run uses:
/// <see cref="RunConfigLayers"/> (the library applies the built-in layer).
/// </summary>
internal sealed class RunConfigOptions
{
    /// <summary><c>--config FILE</c>.</summary>
    public Option<string?> Config { get; } = new("--config") { Description = "config file (TOML or JSON) with ddpo-pytorch's key names" };

    /// <summary><c>--preset NAME</c> (<c>a+b</c> applies a, then b).</summary>
    public Option<string?> Preset { get; } = new("--preset") { Description = $"preset: {string.Join(", ", ConfigPresets.Names)}" };

    /// <summary><c>--model FOLDER|builtin</c>.</summary>
    public Option<string?> Model { get; } = new("--model") { Description = "diffusers pipeline folder (default: the built-in model)" };

    /// <summary><c>--set KEY=VALUE</c> (repeatable).</summary>
    public Option<string[]> Set { get; } = new("--set") { Description = "override a key, e.g. --set train.learning_rate=1e-4 (repeatable)", AllowMultipleArgumentsPerToken = false };

    /// <summary>Adds the options to a command.</summary>
    public void AddTo(Command command)
    {
        command.Add(Config);
        command.Add(Preset);
        command.Add(Model);
        command.Add(Set);
    }

    /// <summary>
    /// Builds the config as a run would, with <paramref name="extraOverrides"/> after the <c>--set</c> ones,
    /// for <paramref name="worldSize"/> processes. Returns it with the preset name actually applied
    /// (e.g. <c>compressibility+builtin</c>; null when only a file was given).
    /// </summary>
    public (DdpoConfig Config, string? Preset) Load(ParseResult parse, IEnumerable<string>? extraOverrides = null, int worldSize = 1)
    {
        var overrides = (parse.GetValue(Set) ?? []).ToList();
        if (parse.GetValue(Model) is { } m) overrides.Add($"model={RunConfigLayers.Quote(m)}");
        overrides.AddRange(extraOverrides ?? []);
        return RunConfigLayers.Load(parse.GetValue(Config), parse.GetValue(Preset), overrides, worldSize);
    }

    /// <summary>The config file given, if any.</summary>
    public string? ConfigFile(ParseResult parse) => parse.GetValue(Config);

    /// <summary>The front door's options for these command-line options (preset, file, <c>--set</c>, <c>--model</c>).</summary>
    public DdpoTrainingOptions ToTrainingOptions(ParseResult parse) => new()
    {
        Preset = parse.GetValue(Preset),
        ConfigFile = parse.GetValue(Config),
        Set = (parse.GetValue(Set) ?? []).ToList(),
        Model = parse.GetValue(Model),
    };
}
