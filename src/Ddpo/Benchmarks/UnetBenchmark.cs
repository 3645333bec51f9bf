using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Benchmarks;

/// <summary>Result of <see cref="UnetBenchmark.Run"/>.</summary>
/// <param name="Config">What was measured (preset name or folder).</param>
/// <param name="Batch">Samples per forward.</param>
/// <param name="MillisecondsPerCall">Median wall time of one forward.</param>
/// <param name="GflopPerSample">Counted GFLOP per sample per forward.</param>
/// <param name="Tflops">Achieved TFLOP/s.</param>
/// <param name="Parameters">Parameter count.</param>
internal sealed record UnetBenchmarkResult(string Config, int Batch, double MillisecondsPerCall, double GflopPerSample, double Tflops, long Parameters);

/// <summary>Times the UNet forward pass (random weights: speed does not depend on them).</summary>
internal static class UnetBenchmark
{
    /// <summary>Presets: <c>sd14</c>/<c>sd15</c>, <c>sd21</c>, <c>tiny</c>; or a UNet / pipeline folder with a config.json.</summary>
    public static UNet2DConditionConfig ResolveConfig(string spec) => spec.ToLowerInvariant() switch
    {
        "sd14" or "sd1.4" or "sd15" or "sd1.5" or "sd1" => UNet2DConditionConfig.Sd14(),
        "sd21" or "sd2.1" or "sd2" => UNet2DConditionConfig.Sd21(),
        "tiny" => TinyPipelineWriter.UnetConfig(new TinyPipelineOptions()),
        "builtin" => UNet2DConditionConfig.Load(Path.Combine(BuiltinModel.Directory, "unet", "config.json")),
        _ when File.Exists(Path.Combine(spec, "config.json")) => UNet2DConditionConfig.Load(Path.Combine(spec, "config.json")),
        _ when File.Exists(Path.Combine(spec, "unet", "config.json")) => UNet2DConditionConfig.Load(Path.Combine(spec, "unet", "config.json")),
        _ => throw new ArgumentException($"--config: '{spec}' is neither a preset (sd14, sd21, tiny, builtin) nor a folder with a UNet config.json"),
    };

    /// <summary>Runs <paramref name="warmup"/> untimed and <paramref name="iterations"/> timed forwards.</summary>
    public static UnetBenchmarkResult Run(string spec, int batch, ScalarType dtype, Device device, int warmup = 3, int iterations = 10)
    {
        if (batch < 1) throw new ArgumentException($"--batch must be >= 1, got {batch}");
        if (iterations < 1) throw new ArgumentException($"--iters must be >= 1, got {iterations}");
        var config = ResolveConfig(spec);
        using var unet = new UNet2DConditionModel(config, dtype, device);
        unet.eval();
        int size = config.SampleSize ?? 64;
        using var sample = randn(new long[] { batch, config.InChannels, size, size }, dtype: dtype, device: device);
        using var states = randn(new long[] { batch, 77, config.CrossAttentionDim[0] }, dtype: dtype, device: device);
        using var t = full(new long[] { batch }, 999L, dtype: ScalarType.Int64, device: device);
        void Forward()
        {
            using var scope = NewDisposeScope();
            using var _ = inference_mode();
            unet.forward(sample, t, states);
        }
        double flops = FlopCounter.Count(unet, Forward);
        double ms = MedianTimer.Milliseconds(Forward, warmup, iterations, device);
        long parameters = unet.parameters().Sum(p => p.numel());
        return new UnetBenchmarkResult(spec, batch, ms, flops / batch / 1e9, flops / (ms / 1000) / 1e12, parameters);
    }

    /// <summary>Waits for queued GPU work.</summary>
    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }
}
