using System.CommandLine;
using Ddpo.Pipelines;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary><c>ddpo export</c>: merges fine-tuned LoRA weights into a full diffusers pipeline folder.</summary>
internal static class ExportCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "base pipeline folder (default: the built-in model)" };
        var lora = new Option<string>("--lora") { Description = "LoRA weights (e.g. RUN_DIR/lora.safetensors)", Required = true };
        var output = new Option<string>("--out") { Description = "folder for the merged pipeline", Required = true };
        var command = new Command("export", "Merge LoRA weights into the UNet and write a complete diffusers pipeline folder") { model, lora, output };
        command.SetAction(parse =>
        {
            var source = ModelResolver.Folder(parse.GetValue(model));
            var outDir = parse.GetValue(output)!;
            PipelineExporter.ExportMerged(source, parse.GetValue(lora)!, outDir);
            AnsiConsole.MarkupLineInterpolated($"wrote the merged pipeline to [green]{outDir}[/]");
            return 0;
        });
        return command;
    }
}
