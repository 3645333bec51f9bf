using System.CommandLine;
using Ddpo.Benchmarks;
using Ddpo.Config;
using Ddpo.Evaluation;
using Ddpo.Rewards;
using Ddpo.Runtime;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo bench unet|model|reward</c>: speed measurements.</summary>
internal static class BenchCommand
{
    /// <summary>Reference: PyTorch 2.11 + diffusers on an H200, SD 1.4 UNet, batch 16, fp16.</summary>
    public const double ReferenceMs = 49.6;

    /// <summary>Builds the command and its sub-commands.</summary>
    public static Command Create()
    {
        var command = new Command("bench", "Measure speed: the UNet forward, a whole model's sampling and training throughput, or a reward's cost per image");
        command.Add(CreateUnet());
        command.Add(CreateModel());
        command.Add(CreateReward());
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

    /// <summary>
    /// <c>ddpo bench reward</c>: a reward's cost per image, built from a config as training builds it (its
    /// <c>[reward.*]</c> model folders, <c>device</c> and <c>[pretrained] dtype</c>) and called on batches of images of
    /// that device and dtype (<see cref="RewardBenchmark"/>).
    /// </summary>
    private static Command CreateReward()
    {
        var reward = new Option<string?>("--reward") { Description = "a registered reward, or weighted (with --set rewards.NAME=WEIGHT); default: the config's reward_fn" };
        var config = new Option<string?>("--config") { Description = "config file (TOML or JSON) with the reward settings" };
        var preset = new Option<string?>("--preset") { Description = "preset whose reward (and settings) to measure" };
        var set = new Option<string[]>("--set") { Description = "override a key, e.g. --set reward.imagereward.model=DIR (repeatable)" };
        var prompts = new Option<string?>("--prompts") { Description = "the prompts: a prompt_fn name or file:PATH (default: the config's prompt_fn)" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 16, Description = "images per reward call" };
        var resolution = new Option<int>("--resolution") { DefaultValueFactory = _ => 512, Description = "image side in pixels" };
        var iters = new Option<int>("--iters") { DefaultValueFactory = _ => 5, Description = "timed calls" };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 1, Description = "untimed calls first" };
        var common = new CommonOptions();
        var command = new Command("reward", "Time a reward on batches of images on the policy's device and dtype and report ms per image")
            { reward, config, preset, set, prompts, batch, resolution, iters, warmup };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            // --device and --dtype, when given, are the config's device and [pretrained] dtype: the reward models load with them.
            var overrides = (parse.GetValue(set) ?? []).ToList();
            if (common.ExplicitDevice(parse) is { } d) overrides.Add($"device={RunConfigLayers.Quote(d)}");
            if (common.ExplicitDType(parse) is { } t) overrides.Add($"pretrained.dtype={RunConfigLayers.Quote(t)}");
            var cfg = DdpoConfig.Load(parse.GetValue(config), parse.GetValue(preset), overrides);
            common.ApplyRuntime(parse);
            var device = TorchRuntime.ResolveDevice(cfg.Device);
            var dtype = TorchRuntime.ResolveDType(cfg.Pretrained.Dtype, device);
            var name = parse.GetValue(reward) ?? cfg.RewardFn;
            var samples = EvaluationPromptSets.Resolve(cfg, parse.GetValue(prompts) ?? "train").First().Prompts;
            var registry = RewardFactory.CreateRegistry(cfg, m => Console.Error.WriteLine(m));
            var scorer = name == cfg.RewardFn ? registry.Create(cfg.RewardFn, cfg.Rewards) : registry.Create(name);
            RewardBenchmarkResult r;
            try
            {
                r = RewardBenchmark.Run(scorer, samples, parse.GetValue(batch), parse.GetValue(resolution), device, dtype,
                    parse.GetValue(warmup), parse.GetValue(iters));
            }
            finally
            {
                (scorer as IDisposable)?.Dispose();
            }
            var table = new Table().AddColumns("reward", "device", "dtype", "batch", "resolution", "ms/batch", "ms/image", "images/s", "scored");
            table.AddRow(Markup.Escape(r.Reward), device.ToString(), TorchRuntime.DTypeName(dtype), r.Batch.ToString(), r.Resolution.ToString(),
                $"{r.MillisecondsPerBatch:F1}", $"{r.MillisecondsPerImage:F2}", $"{r.ImagesPerSecond:F1}", $"{r.Finite}/{r.Batch}");
            AnsiConsole.Write(table);
            Console.WriteLine($"reward_ms_per_image={r.MillisecondsPerImage:F3} reward_images_per_s={r.ImagesPerSecond:F3} scored={r.Finite}");
            return 0;
        });
        return command;
    }
}
