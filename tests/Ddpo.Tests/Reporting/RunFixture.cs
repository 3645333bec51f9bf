using System.Globalization;
using System.Text.Json;
using Ddpo.Runs;
using Ddpo.Tests.Support;
using Ddpo.Training;
using SkiaSharp;

namespace Ddpo.Tests.Reporting;

/// <summary>Writes a run directory shaped like the trainer's: metrics.jsonl, config.toml, images/ with real PNGs.</summary>
internal sealed class RunFixture
{
    public RunFixture(string directory) => Directory = directory;

    public string Directory { get; }

    public List<Dictionary<string, object?>> Lines { get; } = [];

    public static readonly string[] Prompts = ["a cat", "a dog <b>&amp;</b>", "a horse"];

    /// <summary>Colour of eval image (prompt, image-epoch index): distinct, saturated, exact.</summary>
    public static SKColor ImageColor(int prompt, int epochIndex) =>
        new((byte)(40 + 90 * prompt), (byte)(200 - 60 * epochIndex % 200), (byte)(60 + 50 * epochIndex % 190));

    /// <summary>
    /// Logs <paramref name="epochs"/> epochs of metrics with rewards rising linearly (plus deterministic
    /// noise), per-prompt rewards, a reward component and, where <paramref name="watchFallsFrom"/> is set,
    /// a watch reward that rises, then falls from that epoch on; <paramref name="collapsed"/> marks epochs
    /// <c>reward_collapsed</c> (and gives them zero spread).
    /// </summary>
    public RunFixture WriteMetrics(int epochs, int? watchFallsFrom = null, bool withWatch = true, Func<int, string, double?>? overrideValue = null,
        Func<int, bool>? collapsed = null)
    {
        using var writer = new TestMetricsWriter(Directory);
        var rng = new Random(1234);
        var start = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);
        for (int e = 0; e < epochs; e++)
        {
            double mean = 1.0 + 0.3 * e + 0.02 * (rng.NextDouble() - 0.5);
            double std = 0.5 + 0.01 * e;
            var prompts = new Dictionary<string, object?>();
            for (int p = 0; p < Prompts.Length; p++)
            {
                prompts[Prompts[p]] = new Dictionary<string, object?> { ["mean"] = mean + 0.1 * p, ["n"] = 4 + p };
            }
            var line = new Dictionary<string, object?>
            {
                ["epoch"] = e,
                ["reward_mean"] = mean,
                ["reward_std"] = std,
                ["reward_sem"] = std / Math.Sqrt(16),
                ["reward_min"] = mean - 2 * std,
                ["reward_max"] = mean + 2 * std,
                ["reward_jpeg_mean"] = mean * 0.7,
                ["approx_kl"] = 1e-4 * (1 + e),
                ["clipfrac"] = 0.01 * e,
                ["loss"] = -0.01 * e + 0.001 * rng.NextDouble(),
                ["first_ratio_max_dev"] = 1e-7,
                ["samples"] = 16,
                ["samples_trained"] = 16,
                ["nonfinite_rewards"] = 0,
                ["optimizer_steps"] = 2,
                ["learning_rate"] = 3e-4,
                ["sampling_s"] = 10.0 + e,
                ["reward_s"] = 1.5,
                ["training_s"] = 20.0,
                ["eval_images_s"] = e % 4 == 0 ? 3.0 : 0.0,
                ["time"] = start.AddMinutes(e).ToString("o", CultureInfo.InvariantCulture),
                ["prompt_rewards"] = prompts,
            };
            if (withWatch)
            {
                double watch = watchFallsFrom is { } f && e >= f ? 5.0 + 0.05 * f - 0.2 * (e - f) : 5.0 + 0.05 * e;
                line["watch_aesthetic_mean"] = watch + 0.005 * (rng.NextDouble() - 0.5);
            }
            if (overrideValue is not null)
            {
                foreach (var key in line.Keys.ToList())
                {
                    if (overrideValue(e, key) is { } v) line[key] = v;
                }
            }
            if (collapsed is not null)
            {
                // Every sample scored the same: no spread, and the field that says so.
                line["reward_collapsed"] = collapsed(e);
                if (collapsed(e)) (line["reward_std"], line["reward_sem"], line["reward_min"], line["reward_max"]) = (0.0, 0.0, line["reward_mean"], line["reward_mean"]);
            }
            writer.Write(line);
            Lines.Add(line);
        }
        return this;
    }

    public RunFixture WriteConfig(string text)
    {
        File.WriteAllText(Path.Combine(Directory, "config.toml"), text);
        return this;
    }

    /// <summary>Writes images/prompts.json and one folder per epoch with 00.png.. and grid.png (32×32 each).</summary>
    public RunFixture WriteImages(IReadOnlyList<int> imageEpochs, int size = 32, bool writePrompts = true)
    {
        var images = Path.Combine(Directory, "images");
        System.IO.Directory.CreateDirectory(images);
        if (writePrompts) File.WriteAllText(Path.Combine(images, "prompts.json"), JsonSerializer.Serialize(Prompts));
        for (int k = 0; k < imageEpochs.Count; k++)
        {
            var folder = Path.Combine(images, $"epoch-{imageEpochs[k]:0000}");
            System.IO.Directory.CreateDirectory(folder);
            for (int p = 0; p < Prompts.Length; p++)
            {
                WritePng(Path.Combine(folder, $"{p:00}.png"), size, size, ImageColor(p, k));
            }
            WritePng(Path.Combine(folder, "grid.png"), size * Prompts.Length, size, ImageColor(0, k));
        }
        return this;
    }

    /// <summary>A PNG filled with <paramref name="color"/> with a small white square in one corner.</summary>
    public static void WritePng(string path, int width, int height, SKColor color)
    {
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                bitmap.SetPixel(x, y, x < width / 4 && y < height / 4 ? SKColors.White : color);
            }
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }
}
