using System.CommandLine;
using Ddpo.Models.Loading;
using Spectre.Console;
using static TorchSharp.torch;

namespace Ddpo.Cli.Commands;

/// <summary>
/// <c>ddpo convert FILE.pt --out FILE.safetensors</c>: rewrites a PyTorch pickle checkpoint as safetensors. The pickle
/// is read with torch.load's weights_only rules (<see cref="TorchCheckpoint"/>): nothing in it is executed.
/// </summary>
internal static class ConvertCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var input = new Argument<string>("checkpoint") { Description = "a torch.save checkpoint (.pt, .pth, .bin; the zip format of torch >= 1.6)" };
        var output = new Option<string>("--out") { Description = "the safetensors file to write", Required = true };
        var strip = new Option<string?>("--strip-prefix") { Description = "remove this prefix from the tensor names that have it (e.g. 'module.' of a DistributedDataParallel checkpoint)" };
        var command = new Command("convert", "Convert a PyTorch pickle checkpoint to safetensors without executing anything in it (torch.load weights_only=True rules)")
        {
            input, output, strip,
        };
        command.SetAction(parse =>
        {
            Convert(parse.GetValue(input)!, parse.GetValue(output)!, parse.GetValue(strip));
            return 0;
        });
        return command;
    }

    private static void Convert(string source, string destination, string? prefix)
    {
        if (Path.GetFullPath(source) == Path.GetFullPath(destination))
        {
            throw new ArgumentException($"--out {destination} is the checkpoint itself; choose another file");
        }
        var tensors = TorchCheckpoint.Load(source, out var skipped);
        try
        {
            var named = prefix is null ? tensors : StripPrefix(tensors, prefix, source);
            SafetensorsFile.SaveAtomic(destination, named);
            long parameters = tensors.Values.Sum(t => t.numel());
            AnsiConsole.MarkupLineInterpolated($"read {tensors.Count} tensors ({parameters:N0} parameters) from {source}");
            if (skipped.Count > 0)
            {
                AnsiConsole.MarkupLineInterpolated($"skipped {skipped.Count} value(s) that are not tensors: {string.Join(", ", skipped)}");
            }
            AnsiConsole.MarkupLineInterpolated($"wrote [green]{destination}[/]");
        }
        finally
        {
            StateDictLoader.DisposeAll(tensors);
        }
    }

    private static Dictionary<string, Tensor> StripPrefix(Dictionary<string, Tensor> tensors, string prefix, string source)
    {
        if (prefix.Length == 0) throw new ArgumentException("--strip-prefix is empty");
        if (!tensors.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal)))
        {
            throw new ArgumentException($"--strip-prefix '{prefix}': no tensor name in {source} starts with it (first names: {string.Join(", ", tensors.Keys.Take(5))})");
        }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            var stripped = name.StartsWith(prefix, StringComparison.Ordinal) ? name[prefix.Length..] : name;
            if (stripped.Length == 0 || !result.TryAdd(stripped, tensor))
            {
                throw new ArgumentException($"--strip-prefix '{prefix}': '{name}' would become '{stripped}', {(stripped.Length == 0 ? "an empty name" : "which another tensor already has")}");
            }
        }
        return result;
    }
}
