using System.Text.RegularExpressions;
using Ddpo.Cli;
using Ddpo.Config;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Cli;

[Collection("cli")]
public sealed class ConfigCliTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("ddpo-config-cli");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Output) Run(params string[] args) => CliTests.Capture(() => CliApp.Run(args));

    [Fact]
    public void PrintsThePresetsTotalsWithoutLoadingTheModel()
    {
        // The model folder does not exist: `ddpo config` only names it.
        var model = Path.Combine(_dir, "no-such-sd-folder");
        var (code, output) = Run("config", "--preset", "aesthetic", "--model", model);
        Assert.Equal(0, code);
        Assert.StartsWith("# preset: aesthetic\n", output);
        Assert.Contains("\nsamples_per_epoch = 256\n", output);
        Assert.Contains("\ntotal_batch_size = 128\n", output);
        Assert.Contains("\nreward_fn = \"aesthetic_score\"\n", output);
        Assert.EndsWith("\n# 256 samples per epoch, 128 per optimizer step, 2 optimizer steps per epoch; " +
            "per process (1 process): 32 batches of 8 samples, 32 accumulation steps of 4\n", output);

        // The output is a config file that gives the same run.
        var file = Path.Combine(_dir, "aesthetic.toml");
        File.WriteAllText(file, output);
        var again = DdpoConfig.Load(file, null, null);
        Assert.Equal(model, again.Model);
        Assert.Equal((32, 32), (again.Sample.NumBatchesPerEpoch, again.Train.GradientAccumulationSteps));
        var (code2, output2) = Run("config", "--config", file);
        Assert.Equal(0, code2);
        Assert.Equal(output[output.IndexOf("# DDPO", StringComparison.Ordinal)..], output2);
    }

    [Fact]
    public void WorldSizeSetAndTheBuiltinLayerAreApplied()
    {
        var (code, output) = Run("config", "--preset", "compressibility", "--model", "sd", "--world-size", "8");
        Assert.Equal(0, code);
        Assert.Contains("# num_batches_per_epoch = 4  (per process: samples_per_epoch 256 / (batch_size 8 x 8 processes))", output);
        Assert.Contains("per process (8 processes): 4 batches of 8 samples, 2 accumulation steps of 4", output);

        (code, output) = Run("config", "--preset", "compressibility", "--model", "sd", "--set", "sample.batch_size=4", "--set", "num_epochs=3");
        Assert.Equal(0, code);
        Assert.Contains("\nnum_epochs = 3\n", output);
        Assert.Contains("per process (1 process): 64 batches of 4 samples", output);

        // The built-in model (the default) gets its own sizes, as `ddpo train` would.
        (code, output) = Run("config", "--preset", "aesthetic");
        Assert.Equal(0, code);
        Assert.StartsWith("# preset: aesthetic+builtin (sized for the built-in model", output);
        Assert.Contains("# 96 samples per epoch, 96 per optimizer step, 1 optimizer step per epoch; per process (1 process): 6 batches of 16 samples, 24 accumulation steps of 4", output);

        (code, output) = Run("config");
        Assert.Equal(0, code);
        Assert.StartsWith("# preset: compressibility+builtin", output);
    }

    [Fact]
    public void TotalsThatDoNotSplitExitWithCode2AndTheKey()
    {
        var (code, output) = Run("config", "--preset", "prompt_image_alignment", "--model", "sd", "--world-size", "8");
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("sample.samples_per_epoch", output);
        Assert.Contains("36 per process", Regex.Replace(output, @"\s+", " ")); // the console wraps long messages

        (code, output) = Run("config", "--world-size", "0");
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("--world-size", output);

        (code, output) = Run("config", "--preset", "compressibility", "--set", "sample.samples_per_epoch=64", "--set", "sample.num_batches_per_epoch=2");
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("not both", output);
    }
}
