using System.CommandLine;

namespace Ddpo.Cli.Commands;

/// <summary>Every sub-command of <c>ddpo</c>.</summary>
internal static class CommandCatalog
{
    /// <summary>Creates the sub-commands, in the order <c>--help</c> lists them.</summary>
    public static IEnumerable<Command> All() =>
    [
        TrainCommand.Create(),
        ConfigCommand.Create(),
        SampleCommand.Create(),
        ExportCommand.Create(),
        ReportCommand.Create(),
        EvalCommand.Create(),
        ScoreCommand.Create(),
        InitTinyCommand.Create(),
        BenchCommand.Create(),
        DoctorCommand.Create(),
        GpuCheckCommand.Create(),
        ClusterCheckCommand.Create(),
        MakeDataCommand.Create(),
        PretrainCommand.Create(),
        ConvertCommand.Create(),
    ];
}
