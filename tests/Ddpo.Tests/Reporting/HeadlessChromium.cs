using System.Diagnostics;
using System.Text;

namespace Ddpo.Tests.Reporting;

/// <summary>Runs Debian's headless Chromium on a local file: a screenshot or the rendered DOM.</summary>
internal static class HeadlessChromium
{
    /// <summary>Where Debian's <c>chromium</c> package installs the browser.</summary>
    public const string Path = "/usr/bin/chromium";

    public static bool Installed => File.Exists(Path);

    /// <summary>Screenshots <paramref name="file"/> at 1280×<paramref name="height"/> into <paramref name="png"/>.</summary>
    public static void Screenshot(string file, string png, string scratch, int height = 2000) =>
        Run(scratch, $"--screenshot={png}", $"--window-size=1280,{height}", "--hide-scrollbars", "--force-device-scale-factor=1", new Uri(file).AbsoluteUri);

    /// <summary>The DOM after loading <paramref name="file"/>, serialised.</summary>
    public static string DumpDom(string file, string scratch) => Run(scratch, "--dump-dom", new Uri(file).AbsoluteUri);

    private static string Run(string scratch, params string[] args)
    {
        var profile = Directory.CreateDirectory(System.IO.Path.Combine(scratch, "profile-" + Guid.NewGuid().ToString("N"))).FullName;
        var psi = new ProcessStartInfo(Path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
                 {
                     "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--disable-extensions", "--user-data-dir=" + profile,
                 }.Concat(args))
        {
            psi.ArgumentList.Add(a);
        }
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + Path);
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(60_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"chromium {string.Join(' ', args)} did not finish in 60 s; stderr:\n{stderr}");
        }
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"chromium exited with {process.ExitCode}; stderr:\n{stderr}");
        return stdout.ToString();
    }
}
