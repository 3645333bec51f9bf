using Ddpo.Pipelines;
using Ddpo.Schedulers;

namespace Ddpo.Tests.Support;

/// <summary>Small pipeline folders written once per test run (init-tiny), shared by tests that only read them.</summary>
internal static class TinyModels
{
    private static readonly Lazy<string> LatentModel = new(() => Write("latent", new TinyPipelineOptions()));
    private static readonly Lazy<string> PixelModel = new(() => Write("pixel", new TinyPipelineOptions
    {
        WithVae = false, SampleSize = 16, UnetChannels = [16, 32], TextHiddenSize = 16, Seed = 1,
    }));

    /// <summary>A latent-space tiny pipeline (VAE, 16x16 latents, 32x32 images).</summary>
    public static string Latent => LatentModel.Value;

    /// <summary>A pixel-space tiny pipeline (no VAE, 16x16 RGB), fastest to sample and train.</summary>
    public static string Pixel => PixelModel.Value;

    /// <summary>
    /// A copy of <see cref="Pixel"/> in a new temporary folder (the caller deletes it) whose scheduler config is
    /// <paramref name="change"/>d, e.g. <c>set_alpha_to_one = true</c>.
    /// </summary>
    public static string PixelWithScheduler(Func<DdimSchedulerConfig, DdimSchedulerConfig> change)
    {
        var dir = TestPaths.NewTempDir("ddpo-tiny-scheduler");
        foreach (var file in Directory.GetFiles(Pixel, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(dir, Path.GetRelativePath(Pixel, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        var schedulerFile = Path.Combine(dir, "scheduler", "scheduler_config.json");
        File.WriteAllText(schedulerFile, change(DdimSchedulerConfig.Load(schedulerFile)).ToJson());
        return dir;
    }

    private static string Write(string name, TinyPipelineOptions options)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"ddpo-tiny-{name}-{Environment.ProcessId}");
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        TinyPipelineWriter.Write(options, dir);
        return dir;
    }
}
