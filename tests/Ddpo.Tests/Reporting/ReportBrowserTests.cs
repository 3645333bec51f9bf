using System.Text.RegularExpressions;
using Ddpo.Reporting;
using Ddpo.Tests.Support;
using SkiaSharp;
using Xunit;

namespace Ddpo.Tests.Reporting;

/// <summary>
/// Loads a report in a real browser (Debian's headless Chromium): the screenshot must show the plots and
/// the image grid, and the rendered DOM must hold the SVG lines and embedded images. Skipped where
/// /usr/bin/chromium is absent. Set DDPO_KEEP_REPORT to a folder to keep the report and screenshot.
/// </summary>
public sealed class ReportBrowserTests : IDisposable
{
    private readonly string _root = TestPaths.NewTempDir("ddpo-browser");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [SkippableFact]
    public void ReportRendersPlotsAndImageGridInHeadlessChromium()
    {
        Skip.IfNot(HeadlessChromium.Installed,
            $"{HeadlessChromium.Path} not found: install Debian's chromium (apt-get install -y --no-install-recommends chromium) to run the browser test");

        var runDir = Directory.CreateDirectory(Path.Combine(_root, "run-browser")).FullName;
        new RunFixture(runDir)
            .WriteMetrics(epochs: 12, watchFallsFrom: 6)
            .WriteConfig("[train]\nnum_epochs = 12\nlearning_rate = 3e-4\n")
            .WriteImages([0, 6, 12]);
        var report = RunReport.Write(runDir);

        // The rendered DOM: SVG lines with points, and every grid image as an embedded PNG.
        var dom = HeadlessChromium.DumpDom(report, _root);
        Assert.Contains("<svg class=\"chart chart-line\"", dom);
        var polylines = Regex.Matches(dom, "<polyline[^>]*points=\"([^\"]*)\"").Select(m => m.Groups[1].Value.Trim()).ToList();
        Assert.True(polylines.Count >= 8, $"only {polylines.Count} polylines in the DOM");
        Assert.All(polylines, p => Assert.True(p.Split(' ').Length >= 2, $"polyline with too few points: '{p}'"));
        Assert.True(Regex.IsMatch(dom, "<polygon class=\"band\"[^>]*points=\"[^\"]+\""), "no std band in the DOM");
        var images = Regex.Matches(dom, "<img [^>]*src=\"([^\"]*)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(9, images.Count);
        Assert.All(images, src => Assert.StartsWith("data:image/png;base64,", src));
        Assert.Contains("Over-optimisation: from epoch", dom);

        // The screenshot: not blank, plots drawn, every grid image visible with its exact colours.
        var png = Path.Combine(_root, "report.png");
        HeadlessChromium.Screenshot(report, png, _root);
        if (Environment.GetEnvironmentVariable("DDPO_KEEP_REPORT") is { Length: > 0 } keep)
        {
            Directory.CreateDirectory(keep);
            File.Copy(report, Path.Combine(keep, "report.html"), overwrite: true);
            File.Copy(png, Path.Combine(keep, "report.png"), overwrite: true);
        }
        using var shot = SKBitmap.Decode(png);
        Assert.NotNull(shot);
        Assert.Equal(1280, shot.Width);
        Assert.Equal(2000, shot.Height);
        var pixels = shot.Pixels;
        Assert.True(pixels.Distinct().Count() >= 200, $"only {pixels.Distinct().Count()} distinct colours: blank page?");

        int Near(SKColor c, int tolerance) => pixels.Count(p => Math.Abs(p.Red - c.Red) <= tolerance && Math.Abs(p.Green - c.Green) <= tolerance && Math.Abs(p.Blue - c.Blue) <= tolerance);
        static SKColor OverWhite(SKColor c, double alpha) => new(
            (byte)Math.Round(255 - alpha * (255 - c.Red)), (byte)Math.Round(255 - alpha * (255 - c.Green)), (byte)Math.Round(255 - alpha * (255 - c.Blue)));
        // Reward mean line (#1f77b4), its std band (20% opacity) and the over-optimisation span (#d62728, 13%).
        var blue = new SKColor(0x1f, 0x77, 0xb4);
        Assert.True(Near(blue, 12) > 1500, "reward line not visible");
        Assert.True(Near(OverWhite(blue, 0.2), 3) > 3_000, "std band not visible");
        Assert.True(Near(OverWhite(new SKColor(0xd6, 0x27, 0x28), 0.13), 3) > 20_000, "over-optimisation span not visible");
        // The image grid: 3 prompts × 3 epochs, each 32 px magnified to 128 px (minus its white corner).
        for (int p = 0; p < RunFixture.Prompts.Length; p++)
        {
            for (int k = 0; k < 3; k++)
            {
                var n = Near(RunFixture.ImageColor(p, k), 3);
                Assert.True(n >= 0.9 * (128 * 128 - 32 * 32), $"image prompt {p} epoch column {k}: only {n} pixels of its colour");
            }
        }

    }
}
