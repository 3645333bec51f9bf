using System.CommandLine;
using System.Text.Json;
using Ddpo.Imaging;
using Ddpo.Models.Lora;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Spectre.Console;
using TorchSharp;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo sample</c>: text-to-image sampling to PNG files.</summary>
internal static class SampleCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "diffusers pipeline folder (default: the built-in model)" };
        var prompt = new Option<string[]>("--prompt") { Description = "the text prompt (repeatable: one row of the grid per prompt)", Required = true, Arity = ArgumentArity.OneOrMore };
        var negative = new Option<string>("--negative-prompt") { Description = "negative prompt for guidance", DefaultValueFactory = _ => "" };
        var steps = new Option<int>("--steps") { Description = "DDIM steps", DefaultValueFactory = _ => 50 };
        var guidance = new Option<double>("--guidance") { Description = "classifier-free guidance scale (1 = off)", DefaultValueFactory = _ => 5.0 };
        var eta = new Option<double>("--eta") { Description = "DDIM eta, or a flow model's SDE noise level (0 deterministic)", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long>("--seed") { Description = "random seed", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch") { Description = "images per prompt", DefaultValueFactory = _ => 4 };
        var size = new Option<int?>("--size") { Description = "image side in pixels (default: the model's)" };
        var lora = new Option<string?>("--lora") { Description = "LoRA weights (safetensors) to apply to the denoiser (the UNet, or an SD3 transformer)" };
        var output = new Option<string>("--out") { Description = "output folder for PNGs", Required = true };
        var common = new CommonOptions();
        var command = new Command("sample", "Sample images from a text prompt and save them as PNG") { model, prompt, negative, steps, guidance, eta, seed, batch, size, lora, output };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            var (device, dtype) = common.Resolve(parse);
            int n = parse.GetValue(batch);
            if (n < 1) throw new ArgumentException($"--batch must be >= 1, got {n}");
            var options = new SamplingOptions
            {
                NumSteps = parse.GetValue(steps),
                GuidanceScale = parse.GetValue(guidance),
                Eta = parse.GetValue(eta),
                Height = parse.GetValue(size),
                Width = parse.GetValue(size),
            };
            options.Validate();
            using var pipeline = ModelResolver.LoadPipeline(parse.GetValue(model), device, dtype);
            LoraAdapters? adapters = parse.GetValue(lora) is { } loraPath ? LoraAdapters.Load(pipeline.Policy.Denoiser, loraPath, pipeline.Policy.DenoiserName) : null;
            var texts = parse.GetValue(prompt)!;
            var outDir = parse.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            var generator = new torch.Generator((ulong)parse.GetValue(seed));
            var all = texts.SelectMany(t => Enumerable.Repeat(t, n)).ToArray();
            using var result = ProgressReporter.Run($"sampling {all.Length} image(s)", options.NumSteps, p =>
                pipeline.Sample(all, options, generator, parse.GetValue(negative)!, new Progress<int>(i => p.Report(i))));
            var files = new List<object>();
            for (int i = 0; i < all.Length; i++)
            {
                var file = Path.Combine(outDir, texts.Length == 1 ? $"{i:D4}.png" : $"{i / n:D2}-{i % n:D2}.png");
                ImageTensor.SavePng(result.Images[i], file);
                files.Add(new { file = Path.GetFileName(file), prompt = all[i], seed = parse.GetValue(seed), index = i });
            }
            using (var grid = ImageTensor.Grid(result.Images, n))
            {
                ImageTensor.SavePng(grid, Path.Combine(outDir, "grid.png"));
            }
            File.WriteAllText(Path.Combine(outDir, "samples.json"), JsonSerializer.Serialize(new
            {
                model = pipeline.Source ?? "built-in",
                lora = parse.GetValue(lora),
                steps = options.NumSteps,
                guidance = options.GuidanceScale,
                eta = options.Eta,
                images = files,
            }, new JsonSerializerOptions { WriteIndented = true }));
            adapters?.Detach();
            AnsiConsole.MarkupLineInterpolated($"wrote {all.Length} image(s) and grid.png to [green]{outDir}[/]");
            return 0;
        });
        return command;
    }
}
