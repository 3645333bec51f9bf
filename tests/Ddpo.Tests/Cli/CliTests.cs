using System.Text.Json;
using Ddpo.Cli;
using Ddpo.Imaging;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Cli;

[Collection("cli")]
public sealed class CliTests
{
    [Fact]
    public void InitTinyThenSampleWritesPngs()
    {
        var root = TestPaths.NewTempDir();
        var model = Path.Combine(root, "model");
        var output = Path.Combine(root, "out");
        Assert.Equal(0, CliApp.Run(["init-tiny", "--out", model, "--no-vae", "--sample-size", "16", "--channels", "16,32", "--text-hidden", "16"]));
        foreach (var part in new[] { "model_index.json", "unet/config.json", "text_encoder/model.safetensors", "tokenizer/vocab.json", "scheduler/scheduler_config.json" })
        {
            Assert.True(File.Exists(Path.Combine(model, part)), part);
        }
        Assert.Equal(0, CliApp.Run(["sample", "--model", model, "--prompt", "a cat riding a bike", "--steps", "3", "--batch", "2", "--seed", "7", "--out", output]));
        Assert.True(File.Exists(Path.Combine(output, "grid.png")));
        var pngs = Directory.GetFiles(output, "0*.png").Order().ToArray();
        Assert.Equal(2, pngs.Length);
        using var image = ImageTensor.Load(pngs[0]);
        Assert.Equal(new long[] { 3, 16, 16 }, image.shape);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "samples.json")));
        Assert.Equal("a cat riding a bike", doc.RootElement.GetProperty("images")[0].GetProperty("prompt").GetString());
        Directory.Delete(root, true);
    }

    [Fact]
    public void SampleRunsInHalfPrecisionOnTheCpu()
    {
        // libtorch's CPU has fp16 and bf16 kernels: --dtype fp16 on the CPU is no longer refused.
        var root = TestPaths.NewTempDir();
        foreach (var dtype in new[] { "fp16", "bf16" })
        {
            var output = Path.Combine(root, dtype);
            var (code, text) = Capture(() => CliApp.Run(["sample", "--model", TinyModels.Pixel, "--prompt", "a cat", "--steps", "2", "--batch", "1", "--out", output, "--dtype", dtype, "--device", "cpu"]));
            Assert.True(code == 0, text);
            Assert.True(File.Exists(Path.Combine(output, "grid.png")), dtype);
        }
        Directory.Delete(root, true);
    }

    [Fact]
    public void BadInputGivesExitCode2AndAMessage()
    {
        var root = TestPaths.NewTempDir();
        var (code, output) = Capture(() => CliApp.Run(["sample", "--model", Path.Combine(root, "nope"), "--prompt", "a cat", "--out", root]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("nope", output);
        (code, output) = Capture(() => CliApp.Run(["sample", "--model", TinyModels.Pixel, "--prompt", "a cat", "--out", root, "--dtype", "fp8"]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("--dtype", output);
        (code, output) = Capture(() => CliApp.Run(["sample", "--model", TinyModels.Pixel, "--prompt", "a cat", "--out", root, "--device", "cuda:3"]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("CUDA is not available", output);
        Directory.Delete(root, true);
    }

    internal static (int Code, string Output) Capture(Func<int> run)
    {
        var previous = Console.Out;
        var writer = new StringWriter();
        Console.SetOut(writer);
        Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings { Out = new Spectre.Console.AnsiConsoleOutput(writer) });
        try
        {
            return (run(), writer.ToString());
        }
        finally
        {
            Console.SetOut(previous);
            Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings { Out = new Spectre.Console.AnsiConsoleOutput(previous) });
        }
    }
}
