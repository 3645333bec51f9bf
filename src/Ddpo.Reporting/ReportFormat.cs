using System.Globalization;
using System.Net;
using System.Text;
using Ddpo.Runtime;

namespace Ddpo.Reporting;

/// <summary>Small formatting and file helpers shared by the HTML reports.</summary>
internal static class ReportFormat
{
    /// <summary>Categorical colours (Tableau 10), used in order for series.</summary>
    public static readonly string[] Palette =
    [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ];

    /// <summary>HTML-escapes text for element content and attribute values.</summary>
    public static string Escape(string? text) => WebUtility.HtmlEncode(text ?? "");

    /// <summary>A number for people: 4 significant digits, invariant culture, "NaN" and "∞" spelled out.</summary>
    public static string Num(double v) => double.IsNaN(v) ? "NaN"
        : double.IsPositiveInfinity(v) ? "∞"
        : double.IsNegativeInfinity(v) ? "−∞"
        : v.ToString("G4", CultureInfo.InvariantCulture);

    /// <summary>A signed number for people ("+0.12", "−0.3").</summary>
    public static string Signed(double v) => double.IsFinite(v) && v > 0 ? "+" + Num(v) : Num(v).Replace("-", "−");

    /// <summary>A coordinate for SVG: at most 2 decimals, invariant culture.</summary>
    public static string Coord(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>A duration in seconds for people ("12.3 s", "4 min 05 s", "2 h 03 min").</summary>
    public static string Duration(double seconds)
    {
        if (!double.IsFinite(seconds)) return Num(seconds);
        if (seconds < 60) return seconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";
        var t = TimeSpan.FromSeconds(seconds);
        return t.TotalHours >= 1
            ? $"{(int)t.TotalHours} h {t.Minutes:00} min"
            : $"{t.Minutes} min {t.Seconds:00} s";
    }

    /// <summary>
    /// Writes <paramref name="text"/> (UTF-8, no BOM) to a temporary file beside <paramref name="path"/> and
    /// renames it over <paramref name="path"/>, so readers never see a half-written file.
    /// </summary>
    public static void WriteAtomic(string path, string text) => AtomicFile.WriteAllText(path, text);
}
