namespace Ddpo.Cli.Commands;

/// <summary>What <c>ddpo train</c> with no arguments runs: the built-in model on JPEG compressibility, sized for a 2-core CPU.</summary>
internal static class DefaultRun
{
    /// <summary>The preset of the default run.</summary>
    public const string Preset = Ddpo.Config.RunConfigLayers.DefaultPreset;
}
