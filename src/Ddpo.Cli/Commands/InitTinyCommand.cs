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
        var command = new Command("init-tiny", "Write a small randomly initialised pipeline folder (diffusers layout) for tests, demos and bug reports")
        {
            output, channels, layers, heads, groups, sampleSize, noVae, vaeChannels, textHidden, textLayers, tokenizer, seed, prediction,
        };
        command.SetAction(parse =>
        {
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
            var dir = parse.GetValue(output)!;
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
