using System.CommandLine;
using Ddpo.Benchmarks;
using Ddpo.Rewards;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo bench unet|model</c>: speed measurements.</summary>
internal static class BenchCommand
{
    /// <summary>Reference: PyTorch 2.11 + diffusers on an H200, SD 1.4 UNet, batch 16, fp16.</summary>
    public const double ReferenceMs = 49.6;

    /// <summary>Builds the command and its sub-commands.</summary>
    public static Command Create()
    {
        var command = new Command("bench", "Measure speed: the UNet forward, or a whole model's sampling and training throughput");
        command.Add(CreateUnet());
        command.Add(CreateModel());
        command.Add(BenchRowsCommand.Create());
        return command;
    }

    private static Command CreateUnet()
    {
        var config = new Option<string>("--config") { Description = "sd14, sd21, tiny, builtin, or a UNet/pipeline folder", DefaultValueFactory = _ => "sd14" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 16, Description = "samples per forward" };
        var iters = new Option<int>("--iters") { DefaultValueFactory = _ => 10, Description = "timed forwards" };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 3, Description = "untimed forwards first" };
        var common = new CommonOptions();
        var command = new Command("unet", "Time the UNet forward (random weights) and report ms per call and TFLOP/s") { config, batch, iters, warmup };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            var (device, dtype) = common.Resolve(parse);
            var r = UnetBenchmark.Run(parse.GetValue(config)!, parse.GetValue(batch), dtype, device, parse.GetValue(warmup), parse.GetValue(iters));
            var table = new Table().AddColumns("config", "device", "dtype", "batch", "params", "GFLOP/sample", "ms/call", "TFLOP/s");
            table.AddRow(r.Config, device.ToString(), Runtime.TorchRuntime.DTypeName(dtype), r.Batch.ToString(), $"{r.Parameters / 1e6:F1} M",
                $"{r.GflopPerSample:F1}", $"{r.MillisecondsPerCall:F2}", $"{r.Tflops:F2}");
            AnsiConsole.Write(table);
            Console.WriteLine($"unet_ms_per_call={r.MillisecondsPerCall:F3} tflops={r.Tflops:F3} gflop_per_sample={r.GflopPerSample:F2}");
            if (r.Config.StartsWith("sd1", StringComparison.OrdinalIgnoreCase))
            {
                Console.WriteLine($"reference (PyTorch + diffusers, H200, batch 16, fp16): {ReferenceMs} ms per call, 803 GFLOP per sample");
            }
            return 0;
        });
        return command;
    }

    private static Command CreateModel()
    {
        var model = new Option<string?>("--model") { Description = "pipeline folder (default: the built-in model)" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 16, Description = "images per batch" };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 20, Description = "denoising steps" };
        var guidance = new Option<double>("--guidance") { DefaultValueFactory = _ => 5.0, Description = "guidance scale" };
        var common = new CommonOptions();
        var command = new Command("model", "Sampling images/s and training timesteps/s of a model, split into UNet / text / VAE / reward / optimizer") { model, batch, steps, guidance };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            var (device, dtype) = common.Resolve(parse);
            using var pipeline = ModelResolver.LoadStableDiffusion(parse.GetValue(model), device, dtype, "bench model");
            var reward = new JpegCompressibilityReward();
            var r = PipelineBenchmark.Run(pipeline, reward, parse.GetValue(batch), parse.GetValue(steps), parse.GetValue(guidance));
            var table = new Table().AddColumns("measure", "value");
            table.AddRow("sampling", $"{r.SamplingImagesPerSecond:F2} images/s (batch {r.Batch}, {r.Steps} steps)");
            table.AddRow("  UNet (guided) per step", $"{r.UnetMsPerStep:F1} ms");
            table.AddRow("  text encoder per batch", $"{r.TextEncoderMs:F1} ms");
            table.AddRow("  VAE decode per batch", $"{r.VaeMs:F1} ms");
            table.AddRow("reward (JPEG) per batch", $"{r.RewardMs:F1} ms");
            table.AddRow("training", $"{r.TrainTimestepsPerSecond:F1} sample-timesteps/s");
            table.AddRow("  forward+backward per micro-step", $"{r.TrainMsPerStep:F1} ms");
            table.AddRow("  optimizer step", $"{r.OptimizerMs:F2} ms");
            AnsiConsole.Write(table);
            Console.WriteLine($"sampling_images_per_s={r.SamplingImagesPerSecond:F3} train_timesteps_per_s={r.TrainTimestepsPerSecond:F3}");
            return 0;
        });
        return command;
    }
}
