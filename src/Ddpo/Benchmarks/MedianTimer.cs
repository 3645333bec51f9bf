using System.Diagnostics;
using static TorchSharp.torch;

namespace Ddpo.Benchmarks;

/// <summary>The one timing loop of the benchmarks and checks: warm-up calls, then the median of timed calls.</summary>
internal static class MedianTimer
{
    /// <summary>
    /// Median milliseconds of <paramref name="iterations"/> timed calls (at least one) after <paramref name="warmup"/>
    /// untimed ones. With a CUDA <paramref name="device"/> each call's queued GPU work is waited for before the clock
    /// stops; without one the calls are timed as they return.
    /// </summary>
    public static double Milliseconds(Action action, int warmup, int iterations, Device? device = null)
    {
        for (int i = 0; i < warmup; i++) action();
        Synchronize(device);
        var times = new List<double>();
        for (int i = 0; i < Math.Max(1, iterations); i++)
        {
            var clock = Stopwatch.StartNew();
            action();
            Synchronize(device);
            times.Add(clock.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }

    private static void Synchronize(Device? device)
    {
        if (device is not null) UnetBenchmark.Synchronize(device);
    }
}
