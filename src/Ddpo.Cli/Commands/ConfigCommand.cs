using System.CommandLine;
using Ddpo.Config;

namespace Ddpo.Cli.Commands;

/// <summary>
/// <c>ddpo config</c>: prints the fully resolved config a <c>ddpo train</c> with the same options would use, as TOML
/// (loadable with <c>--config</c>), and its sample counts per epoch, per optimizer step and per process, without
/// loading a model.
/// </summary>
internal static class ConfigCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var configOptions = new RunConfigOptions();
        var worldSize = new Option<int>("--world-size")
        {
            Description = "number of processes (devices) to derive the per-process sizes for (a run uses 1 today)",
            DefaultValueFactory = _ => 1,
        };
        var command = new Command("config", "Print the fully resolved config of a preset/file/--set (as ddpo train would use it) and its sample counts, without loading a model");
        configOptions.AddTo(command);
        command.Add(worldSize);
        command.SetAction(parse =>
        {
            int n = parse.GetValue(worldSize);
            if (n < 1) throw new ArgumentException($"--world-size must be >= 1, got {n}");
            var (cfg, presetName) = configOptions.Load(parse, worldSize: n);
            var output = Console.Out;
            if (presetName is not null)
            {
                var note = presetName.Split('+').Contains(ConfigPresets.BuiltinLayer)
                    ? " (sized for the built-in model; pass --model FOLDER for a Stable Diffusion model's sizes)"
                    : "";
                output.Write($"# preset: {presetName}{note}\n");
            }
            output.Write(cfg.ToToml());
            output.Write($"\n# {cfg.Counts.Summary()}\n");
            return 0;
        });
        return command;
    }
}
