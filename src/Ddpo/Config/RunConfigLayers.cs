using Ddpo.Base;
using Ddpo.Pipelines;

namespace Ddpo.Config;

/// <summary>
/// The layers of a run's config, as <c>ddpo train</c>, <c>ddpo config</c> and <see cref="Ddpo.DdpoRun"/> build it:
/// defaults → preset (<see cref="DefaultPreset"/> when neither a preset nor a file is given) → the
/// <see cref="ConfigPresets.BuiltinLayer"/> layer when the model is the built-in one → file → overrides. The library
/// applies the built-in layer, so a program on the built-in model gets the run sized for it, not 100 epochs of 50 steps.
/// </summary>
internal static class RunConfigLayers
{
    /// <summary>The preset of a run that names neither a preset nor a config file: JPEG compressibility.</summary>
    public const string DefaultPreset = "compressibility";

    /// <summary>
    /// Builds and validates the config for <paramref name="worldSize"/> processes from a config file, a preset and
    /// <c>key=value</c> overrides (values read as TOML, as <c>--set</c>). Returns it with the preset name actually
    /// applied (e.g. <c>compressibility+builtin</c>; null when only a file was given).
    /// </summary>
    /// <exception cref="ConfigException">A key, value, file or preset is wrong; the message names it and where it was set.</exception>
    public static (DdpoConfig Config, string? Preset) Load(string? configFile, string? preset, IEnumerable<string>? overrides, int worldSize = 1)
    {
        var sets = overrides?.ToList() ?? [];
        if (preset is null && configFile is null) preset = DefaultPreset;
        var model = DdpoConfig.Layered(configFile, preset, sets).Model;
        if (model == BuiltinModel.Name && !(preset ?? "").Split('+').Contains(ConfigPresets.BuiltinLayer))
        {
            // The built-in model is small and pixel-space: size the task for it (file and overrides still win).
            preset = preset is null ? ConfigPresets.BuiltinLayer : $"{preset}+{ConfigPresets.BuiltinLayer}";
        }
        return (DdpoConfig.Load(configFile, preset, sets, worldSize), preset);
    }

    /// <summary>A TOML string value for an override (<c>model="..."</c>), quoted and escaped.</summary>
    public static string Quote(string text) => "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
