using System.CommandLine;
using Ddpo.Pipelines;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo init-tiny</c>: writes a small randomly initialised pipeline folder (diffusers layout).</summary>
internal static class InitTinyCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var defaults = new TinyPipelineOptions();
        var output = new Option<string>("--out") { Description = "folder to write", Required = true };
        var channels = new Option<string>("--channels") { Description = "UNet block_out_channels, comma-separated", DefaultValueFactory = _ => string.Join(",", defaults.UnetChannels) };
        var layers = new Option<int>("--layers-per-block") { DefaultValueFactory = _ => defaults.LayersPerBlock, Description = "resnets per UNet block" };
        var heads = new Option<int>("--heads") { DefaultValueFactory = _ => defaults.AttentionHeads, Description = "attention heads" };
        var groups = new Option<int>("--norm-groups") { DefaultValueFactory = _ => defaults.NormGroups, Description = "group-norm groups" };
        var sampleSize = new Option<int>("--sample-size") { DefaultValueFactory = _ => defaults.SampleSize, Description = "UNet sample size (latent side, or pixels without a VAE)" };
        var noVae = new Option<bool>("--no-vae") { Description = "pixel-space model (no VAE, 3-channel UNet)" };
        var vaeChannels = new Option<string>("--vae-channels") { DefaultValueFactory = _ => string.Join(",", defaults.VaeChannels), Description = "VAE block_out_channels, comma-separated" };
        var textHidden = new Option<int>("--text-hidden") { DefaultValueFactory = _ => defaults.TextHiddenSize, Description = "text encoder width (= UNet cross-attention width)" };
        var textLayers = new Option<int>("--text-layers") { DefaultValueFactory = _ => defaults.TextLayers, Description = "text encoder layers" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "folder with CLIP vocab.json + merges.txt (default: a small word-level vocabulary)" };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0, Description = "initialisation seed" };
        var prediction = new Option<string>("--prediction-type") { DefaultValueFactory = _ => "epsilon", Description = "epsilon, v_prediction or sample" };
        var family = new Option<string>("--family") { DefaultValueFactory = _ => "sd", Description = "sd (a Stable Diffusion 1/2 UNet pipeline), sdxl (a StableDiffusionXLPipeline: two CLIP encoders, text_time UNet; the sd options), sd3 (a StableDiffusion3Pipeline: CLIP-L, CLIP-G, T5, MM-DiT, 16-channel VAE) or flux (a FluxPipeline: CLIP, T5, double- and single-stream blocks, guidance embedding)" };
        family.AcceptOnlyFromAmong("sd", "sdxl", "sd3", "flux");
        var sd3 = new TinyTransformerOptions();
        var transformerLayers = new Option<int>("--layers") { DefaultValueFactory = _ => sd3.Layers, Description = "sd3, flux: transformer blocks (flux: double-stream, and as many single-stream)" };
        var headDim = new Option<int>("--head-dim") { DefaultValueFactory = _ => sd3.HeadDim, Description = "sd3, flux: width of one attention head" };
        var command = new Command("init-tiny", "Write a small randomly initialised pipeline folder (diffusers layout) for tests, demos and bug reports")
        {
            output, family, channels, layers, heads, groups, sampleSize, noVae, vaeChannels, textHidden, textLayers, tokenizer, seed, prediction,
            transformerLayers, headDim,
        };
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(output)!;
            if (parse.GetValue(family) is "sd3" or "flux")
            {
                // The shared options keep their meaning; their defaults are the SD3 writer's where not given.
                T Given<T>(Option<T> option, T fallback) => parse.GetResult(option) is { Implicit: false } ? parse.GetValue(option)! : fallback;
                foreach (var option in new Option[] { channels, layers, noVae, tokenizer, prediction })
                {
                    if (parse.GetResult(option) is { Implicit: false }) throw new ArgumentException($"{option.Name} is an option of --family sd and sdxl only");
                }
                var transformerOptions = new TinyTransformerOptions
                {
                    SampleSize = Given(sampleSize, sd3.SampleSize),
                    Layers = parse.GetValue(transformerLayers),
                    Heads = Given(heads, sd3.Heads),
                    HeadDim = parse.GetValue(headDim),
                    TextHiddenSize = Given(textHidden, sd3.TextHiddenSize),
                    TextLayers = Given(textLayers, sd3.TextLayers),
                    VaeChannels = parse.GetResult(vaeChannels) is { Implicit: false } ? ParseInts(parse.GetValue(vaeChannels)!, "--vae-channels") : sd3.VaeChannels,
                    NormGroups = Given(groups, sd3.NormGroups),
                    Seed = parse.GetValue(seed),
                };
                if (parse.GetValue(family) == "flux") TinyFluxWriter.Write(transformerOptions, dir);
                else TinySd3Writer.Write(transformerOptions, dir);
                AnsiConsole.MarkupLineInterpolated($"wrote a tiny {(parse.GetValue(family) == "flux" ? "FLUX" : "Stable Diffusion 3")} pipeline to [green]{dir}[/]");
                return 0;
            }
            foreach (var option in new Option[] { transformerLayers, headDim })
            {
                if (parse.GetResult(option) is { Implicit: false }) throw new ArgumentException($"{option.Name} is an option of --family sd3 and flux only");
            }
            var options = new TinyPipelineOptions
            {
                UnetChannels = ParseInts(parse.GetValue(channels)!, "--channels"),
                LayersPerBlock = parse.GetValue(layers),
                AttentionHeads = parse.GetValue(heads),
                NormGroups = parse.GetValue(groups),
                SampleSize = parse.GetValue(sampleSize),
                WithVae = !parse.GetValue(noVae),
                VaeChannels = ParseInts(parse.GetValue(vaeChannels)!, "--vae-channels"),
                TextHiddenSize = parse.GetValue(textHidden),
                TextLayers = parse.GetValue(textLayers),
                TokenizerSource = parse.GetValue(tokenizer),
                Seed = parse.GetValue(seed),
                PredictionType = parse.GetValue(prediction)!,
            };
            if (parse.GetValue(family) == "sdxl")
            {
                TinySdxlWriter.Write(options, dir);
                AnsiConsole.MarkupLineInterpolated($"wrote a tiny Stable Diffusion XL pipeline to [green]{dir}[/]");
                return 0;
            }
            TinyPipelineWriter.Write(options, dir);
            AnsiConsole.MarkupLineInterpolated($"wrote a tiny pipeline to [green]{dir}[/]");
            return 0;
        });
        return command;
    }

    /// <summary>Parses "32,64" into integers, naming the option on error.</summary>
    public static int[] ParseInts(string text, string option)
    {
        try
        {
            return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        }
        catch (FormatException)
        {
            throw new ArgumentException($"{option}: expected comma-separated integers, got '{text}'");
        }
    }
}
