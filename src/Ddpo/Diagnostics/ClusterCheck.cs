using Ddpo.Distributed;
using System.Text.Json;
using Ddpo.Benchmarks;
using Ddpo.Models.Unet;
using Ddpo.Training;
using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>One rank's answer to <see cref="ClusterCheck.Run"/>.</summary>
/// <param name="Rank">Its rank.</param>
/// <param name="Host">Its machine.</param>
/// <param name="LocalRank">Its index on the machine.</param>
/// <param name="Device">The device it trains on.</param>
/// <param name="SecondsPerAllReduce">Median time of one all-reduce of the bandwidth buffer.</param>
/// <param name="BusGigabytesPerSecond">NCCL-tests' "bus bandwidth": bytes x 2 (n - 1) / n / time, comparable with a link's speed.</param>
/// <param name="StepSeconds">Median time of one optimizer step's gradient all-reduce of the model (host copies included).</param>
internal sealed record RankReport(int Rank, string Host, int LocalRank, string Device, double SecondsPerAllReduce,
    double BusGigabytesPerSecond, double StepSeconds);

/// <summary>The result of a cluster check: every rank's report, the sum check and the model's all-reduce volume.</summary>
/// <param name="Ranks">By rank.</param>
/// <param name="SumCorrect">Whether a tiny all-reduce gave n (n + 1) / 2 on every rank.</param>
/// <param name="BufferBytes">Bytes of the bandwidth buffer.</param>
/// <param name="Unet">The UNet whose step was measured.</param>
/// <param name="LoraRank">Its LoRA rank (0: full fine-tuning).</param>
/// <param name="TrainableParameters">Trainable parameters of that set-up.</param>
/// <param name="StepBytes">Bytes all-reduced per optimizer step (float32 gradients).</param>
internal sealed record ClusterReport(IReadOnlyList<RankReport> Ranks, bool SumCorrect, long BufferBytes, string Unet, int LoraRank,
    long TrainableParameters, long StepBytes);

/// <summary>
/// <c>ddpo cluster-check</c>: checks that the processes of an MPI job can reach each other and measures what data
/// parallelism will cost: a tiny all-reduce whose sum is known, the bandwidth of an all-reduce of a float buffer, and
/// one optimizer step's gradient all-reduce of a UNet (random weights) with LoRA or full fine-tuning.
/// </summary>
internal static class ClusterCheck
{
    /// <summary>Runs the check on every rank; every rank gets the whole report.</summary>
    public static ClusterReport Run(IProcessGroup group, Device device, string unetSpec, int loraRank, int megabytes = 16, int iterations = 5)
    {
        if (megabytes < 1) throw new ArgumentException($"--megabytes must be >= 1, got {megabytes}");
        if (iterations < 1) throw new ArgumentException($"--iters must be >= 1, got {iterations}");
        var one = new double[] { group.Rank + 1 };
        group.AllReduceSum(one);
        bool sumCorrect = one[0] == group.Size * (group.Size + 1) / 2.0;
        var sumAll = new double[] { sumCorrect ? 0 : 1 };
        group.AllReduceSum(sumAll);

        var buffer = new float[megabytes * 1024L * 1024 / sizeof(float)];
        for (int i = 0; i < buffer.Length; i++) buffer[i] = 1f / (1 + i % 97);
        double perCall = Median(iterations, () => group.AllReduceSum(buffer));
        long bufferBytes = buffer.LongLength * sizeof(float);
        double busGbps = bufferBytes * 2.0 * (group.Size - 1) / Math.Max(1, group.Size) / perCall / 1e9;

        var (parameters, stepSeconds) = MeasureStep(group, device, unetSpec, loraRank, iterations);
        var mine = new RankReport(group.Rank, group.Host, group.LocalRank, device.ToString(), perCall, busGbps, stepSeconds);
        var ranks = group.AllGatherBytes(JsonSerializer.SerializeToUtf8Bytes(mine))
            .Select(b => JsonSerializer.Deserialize<RankReport>(b)!).ToArray();
        return new ClusterReport(ranks, sumAll[0] == 0, bufferBytes, unetSpec, loraRank, parameters, parameters * sizeof(float));
    }

    /// <summary>Builds the UNet (random weights), attaches LoRA (or trains it all), fills gradients and times their all-reduce.</summary>
    private static (long Parameters, double Seconds) MeasureStep(IProcessGroup group, Device device, string unetSpec, int loraRank, int iterations)
    {
        using var scope = NewDisposeScope();
        var config = UnetBenchmark.ResolveConfig(unetSpec);
        using var unet = new UNet2DConditionModel(config, ScalarType.Float32, device);
        var weights = loraRank > 0 ? TrainableWeights.WithLora(unet, loraRank, loraRank, seed: 0) : TrainableWeights.Full(unet);
        using (no_grad())
        {
            foreach (var p in weights.Parameters) p.grad = randn_like(p).MoveToOuterDisposeScope();
        }
        var reduce = new GradientAllReduce(group);
        double seconds = group.Size > 1 ? Median(iterations, () => reduce.SumGradients(weights.Parameters)) : 0;
        return (weights.Parameters.Sum(p => p.numel()), seconds);
    }

    /// <summary>Median seconds of a host-side call (MPI), after one warm-up call.</summary>
    private static double Median(int iterations, Action call) => MedianTimer.Milliseconds(call, warmup: 1, iterations) / 1000;

    /// <summary>
    /// The expected time of a ring all-reduce of <paramref name="bytes"/> over <paramref name="processes"/> processes on a
    /// link of <paramref name="gigabytesPerSecond"/>: each process sends and receives 2 (n - 1) / n of the buffer.
    /// Latency is left out (it matters below a few MB).
    /// </summary>
    public static double RingAllReduceSeconds(long bytes, int processes, double gigabytesPerSecond) =>
        processes <= 1 ? 0 : bytes * 2.0 * (processes - 1) / processes / (gigabytesPerSecond * 1e9);

    /// <summary>The links the documentation prices an all-reduce on, with their per-direction bandwidth in GB/s.</summary>
    public static readonly IReadOnlyList<(string Name, double GigabytesPerSecond)> Links =
    [
        ("NVLink 4 (H100)", 450), ("PCIe 4 x16", 25), ("100 Gb Ethernet / InfiniBand EDR", 12.5), ("10 Gb Ethernet", 1.25),
    ];
}
