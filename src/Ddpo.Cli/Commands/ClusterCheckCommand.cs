using Ddpo.Diagnostics;
using System.CommandLine;
using System.Globalization;
using Ddpo.Distributed;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary>
/// <c>ddpo cluster-check</c>: run under <c>mpirun</c> / <c>srun</c> to check that the ranks reach each other and to
/// measure the all-reduce bandwidth and one optimizer step's gradient all-reduce; alone, it prints the volumes only.
/// </summary>
internal static class ClusterCheckCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var megabytes = new Option<int>("--megabytes") { DefaultValueFactory = _ => 16, Description = "size of the bandwidth test buffer in MiB" };
        var iters = new Option<int>("--iters") { DefaultValueFactory = _ => 5, Description = "timed all-reduces (the median is reported)" };
        var unet = new Option<string>("--unet") { DefaultValueFactory = _ => "builtin", Description = "UNet whose gradient all-reduce is timed: builtin, sd14, sd21, tiny or a folder (random weights)" };
        var loraRank = new Option<int>("--lora-rank") { DefaultValueFactory = _ => 8, Description = "LoRA rank (0: full fine-tuning)" };
        var common = new CommonOptions();
        var command = new Command("cluster-check", "Check an MPI job (mpirun -np N ddpo cluster-check): each rank's host and device, a tiny all-reduce, bandwidth, and the all-reduce per optimizer step")
        {
            megabytes, iters, unet, loraRank,
        };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            var group = ProcessGroups.FromEnvironment();
            var (anyDevice, _) = common.Resolve(parse);
            var device = ProcessGroups.DeviceForRank(anyDevice, group);
            var report = ClusterCheck.Run(group, device, parse.GetValue(unet)!, parse.GetValue(loraRank), parse.GetValue(megabytes), parse.GetValue(iters));
            if (group.Rank == 0) Print(report, group);
            if (!report.SumCorrect) throw new UserFacingException("the all-reduce check gave a wrong sum on at least one rank: the MPI installation is broken");
            return 0;
        });
        return command;
    }

    private static void Print(ClusterReport report, IProcessGroup group)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"{report.Ranks.Count} process{(report.Ranks.Count == 1 ? "" : "es")} ({group.Description}); all-reduce sum check: {(report.SumCorrect ? "ok" : "WRONG")}");
        var table = new Table().AddColumns("rank", "host", "local rank", "device", $"all-reduce {report.BufferBytes / 1048576} MiB", "bus GB/s", "step all-reduce");
        foreach (var r in report.Ranks)
        {
            table.AddRow(r.Rank.ToString(inv), r.Host, r.LocalRank.ToString(inv), r.Device, $"{r.SecondsPerAllReduce * 1e3:F2} ms",
                r.BusGigabytesPerSecond.ToString("F2", inv), $"{r.StepSeconds * 1e3:F2} ms");
        }
        AnsiConsole.Write(table);
        var setup = report.LoraRank > 0 ? $"LoRA rank {report.LoraRank}" : "full fine-tuning";
        Console.WriteLine(string.Create(inv, $"optimizer step of {report.Unet} with {setup}: {report.TrainableParameters:N0} trainable parameters, {report.StepBytes / 1e6:F2} MB all-reduced per step"));
        foreach (var (name, gbps) in ClusterCheck.Links)
        {
            Console.WriteLine(string.Create(inv, $"  expected on {name} ({gbps} GB/s), ring all-reduce: 2 processes {ClusterCheck.RingAllReduceSeconds(report.StepBytes, 2, gbps) * 1e3:F2} ms, 8 processes {ClusterCheck.RingAllReduceSeconds(report.StepBytes, 8, gbps) * 1e3:F2} ms"));
        }
        Console.WriteLine(string.Create(inv, $"cluster_check ranks={report.Ranks.Count} sum_ok={report.SumCorrect} step_bytes={report.StepBytes} step_ms={report.Ranks.Max(r => r.StepSeconds) * 1e3:F3} bus_gbps={report.Ranks.Min(r => r.BusGigabytesPerSecond):F3}"));
    }
}
