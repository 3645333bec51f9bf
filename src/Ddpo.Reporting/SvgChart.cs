using System.Globalization;
using System.Text;
using static Ddpo.Reporting.ReportFormat;

namespace Ddpo.Reporting;

/// <summary>One line of a <see cref="SvgChart"/>, optionally with a shaded band (e.g. mean ± std).</summary>
internal sealed record ChartSeries(string Name, string Color, IReadOnlyList<double> X, IReadOnlyList<double> Y)
{
    /// <summary>Lower edge of the band (same length as <see cref="X"/>), or null for no band.</summary>
    public IReadOnlyList<double>? Lower { get; init; }

    /// <summary>Upper edge of the band, or null for no band.</summary>
    public IReadOnlyList<double>? Upper { get; init; }

    /// <summary>Draw the line dashed (secondary series such as min/max).</summary>
    public bool Dashed { get; init; }

    /// <summary>Stroke width in SVG units.</summary>
    public double Width { get; init; } = 2;

    /// <summary>Draw a dot with a hover tooltip at each point.</summary>
    public bool Dots { get; init; } = true;
}

/// <summary>A highlighted x range with a hover label (over-optimisation spans).</summary>
internal sealed record ChartSpan(double From, double To, string Label, string Color);

/// <summary>A vertical marker line with a short label at the top.</summary>
internal sealed record ChartMarker(double X, string Label, string Color);

/// <summary>One layer of a stacked bar chart.</summary>
internal sealed record BarLayer(string Name, string Color, IReadOnlyList<double> Values);

/// <summary>Inline SVG line and stacked-bar charts, drawn from numbers only (no scripts, no external resources).</summary>
internal static class SvgChart
{
    private const double W = 560, H = 250, Left = 62, Right = 14, Top = 12, Bottom = 36;
    private const double PlotW = W - Left - Right, PlotH = H - Top - Bottom;
    private const int MaxDots = 80;

    /// <summary>A line chart; non-finite points break lines, a lone finite point is drawn as a dot.</summary>
    public static string Lines(string title, string yLabel, IReadOnlyList<ChartSeries> series,
        IReadOnlyList<ChartSpan>? spans = null, IReadOnlyList<ChartMarker>? markers = null, string xLabel = "epoch")
    {
        var xs = series.SelectMany(s => s.X).Where(double.IsFinite).ToList();
        var ys = series.SelectMany(s => s.Y.Concat(s.Lower ?? []).Concat(s.Upper ?? [])).Where(double.IsFinite).ToList();
        if (xs.Count == 0 || ys.Count == 0) return Empty(title, "no finite values logged");

        var (x0, x1, xStep) = XRange(xs);
        var (y0, y1, yStep) = NiceRange(ys.Min(), ys.Max(), 5);
        var sb = Open(title, "line");
        Axes(sb, x0, x1, xStep, y0, y1, yStep, xLabel, yLabel);
        double Px(double x) => Left + (x - x0) / (x1 - x0) * PlotW;
        double Py(double y) => Top + PlotH - (y - y0) / (y1 - y0) * PlotH;

        foreach (var s in spans ?? [])
        {
            double a = Math.Clamp(Px(s.From), Left, Left + PlotW), b = Math.Clamp(Px(s.To), Left, Left + PlotW);
            if (b - a < 2) { a -= 1; b += 1; }
            sb.Append($"<rect class=\"span\" x=\"{Coord(a)}\" y=\"{Top}\" width=\"{Coord(b - a)}\" height=\"{PlotH}\" fill=\"{s.Color}\" fill-opacity=\"0.13\"><title>{Escape(s.Label)}</title></rect>");
        }
        foreach (var s in series.Where(s => s.Lower is not null && s.Upper is not null))
        {
            foreach (var seg in Segments(s.X.Count, i => double.IsFinite(s.X[i]) && double.IsFinite(s.Lower![i]) && double.IsFinite(s.Upper![i])))
            {
                var upper = seg.Select(i => $"{Coord(Px(s.X[i]))},{Coord(Py(s.Upper![i]))}");
                var lower = seg.AsEnumerable().Reverse().Select(i => $"{Coord(Px(s.X[i]))},{Coord(Py(s.Lower![i]))}");
                if (seg.Count == 1)
                {
                    var i = seg[0];
                    sb.Append($"<line class=\"band\" x1=\"{Coord(Px(s.X[i]))}\" x2=\"{Coord(Px(s.X[i]))}\" y1=\"{Coord(Py(s.Lower![i]))}\" y2=\"{Coord(Py(s.Upper![i]))}\" stroke=\"{s.Color}\" stroke-opacity=\"0.35\" stroke-width=\"10\"/>");
                    continue;
                }
                sb.Append($"<polygon class=\"band\" points=\"{string.Join(' ', upper.Concat(lower))}\" fill=\"{s.Color}\" fill-opacity=\"0.2\" stroke=\"none\"/>");
            }
        }
        foreach (var s in series)
        {
            var dash = s.Dashed ? " stroke-dasharray=\"5 4\"" : "";
            foreach (var seg in Segments(s.X.Count, i => double.IsFinite(s.X[i]) && double.IsFinite(s.Y[i])))
            {
                if (seg.Count == 1 && (!s.Dots || s.X.Count > MaxDots))
                {
                    sb.Append($"<circle class=\"pt\" cx=\"{Coord(Px(s.X[seg[0]]))}\" cy=\"{Coord(Py(s.Y[seg[0]]))}\" r=\"2.5\" fill=\"{s.Color}\"/>");
                }
                else if (seg.Count > 1)
                {
                    var pts = string.Join(' ', seg.Select(i => $"{Coord(Px(s.X[i]))},{Coord(Py(s.Y[i]))}"));
                    sb.Append($"<polyline class=\"series\" data-series=\"{Escape(s.Name)}\" points=\"{pts}\" fill=\"none\" stroke=\"{s.Color}\" stroke-width=\"{Coord(s.Width)}\" stroke-linejoin=\"round\"{dash}/>");
                }
            }
            if (s.Dots && s.X.Count <= MaxDots)
            {
                for (int i = 0; i < s.X.Count; i++)
                {
                    if (!double.IsFinite(s.X[i]) || !double.IsFinite(s.Y[i])) continue;
                    sb.Append($"<circle class=\"pt\" cx=\"{Coord(Px(s.X[i]))}\" cy=\"{Coord(Py(s.Y[i]))}\" r=\"3\" fill=\"{s.Color}\"><title>{Escape(s.Name)}, epoch {Num(s.X[i])}: {Num(s.Y[i])}</title></circle>");
                }
            }
        }
        foreach (var m in markers ?? [])
        {
            var x = Coord(Math.Clamp(Px(m.X), Left, Left + PlotW));
            sb.Append($"<line class=\"marker\" x1=\"{x}\" x2=\"{x}\" y1=\"{Top}\" y2=\"{Top + PlotH}\" stroke=\"{m.Color}\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>");
            sb.Append($"<text class=\"marker-label\" x=\"{x}\" y=\"{Top + 11}\" dx=\"4\" fill=\"{m.Color}\" font-size=\"11\" font-weight=\"600\">{Escape(m.Label)}</text>");
        }
        return sb.Append("</svg>").ToString();
    }

    /// <summary>Stacked bars per x (one bar per epoch); non-finite or negative values count as 0.</summary>
    public static string StackedBars(string title, string yLabel, IReadOnlyList<double> x, IReadOnlyList<BarLayer> layers)
    {
        var totals = x.Select((_, i) => layers.Sum(l => Clean(l.Values[i]))).ToList();
        var xs = x.Where(double.IsFinite).ToList();
        if (xs.Count == 0 || layers.Count == 0 || totals.All(t => t == 0)) return Empty(title, "no timings logged");

        var sorted = xs.Distinct().Order().ToList();
        double gap = sorted.Count > 1 ? sorted.Zip(sorted.Skip(1), (a, b) => b - a).Min() : 1;
        var (x0, x1, xStep) = XRange(xs, gap / 2 + 0.01);
        var (y0, y1, yStep) = NiceRange(0, totals.Max(), 5);
        var sb = Open(title, "bars");
        Axes(sb, x0, x1, xStep, y0, y1, yStep, "epoch", yLabel);
        double scale = PlotW / (x1 - x0), barW = Math.Max(1, Math.Min(40, gap * scale * 0.8));
        for (int i = 0; i < x.Count; i++)
        {
            if (!double.IsFinite(x[i])) continue;
            double cx = Left + (x[i] - x0) * scale, acc = 0;
            foreach (var l in layers)
            {
                var v = Clean(l.Values[i]);
                if (v <= 0) continue;
                double yTop = Top + PlotH - (acc + v - y0) / (y1 - y0) * PlotH, yBottom = Top + PlotH - (acc - y0) / (y1 - y0) * PlotH;
                sb.Append($"<rect class=\"bar\" x=\"{Coord(cx - barW / 2)}\" y=\"{Coord(yTop)}\" width=\"{Coord(barW)}\" height=\"{Coord(Math.Max(0.5, yBottom - yTop))}\" fill=\"{l.Color}\"><title>epoch {Num(x[i])}, {Escape(l.Name)}: {Num(v)}</title></rect>");
                acc += v;
            }
        }
        return sb.Append("</svg>").ToString();
    }

    /// <summary>An HTML legend for the given (name, colour, dashed) entries.</summary>
    public static string Legend(IEnumerable<(string Name, string Color, bool Dashed)> entries)
    {
        var sb = new StringBuilder("<div class=\"legend\">");
        foreach (var (name, color, dashed) in entries)
        {
            sb.Append($"<span><i style=\"border-top:3px {(dashed ? "dashed" : "solid")} {color}\"></i>{Escape(name)}</span>");
        }
        return sb.Append("</div>").ToString();
    }

    private static double Clean(double v) => double.IsFinite(v) && v > 0 ? v : 0;

    private static StringBuilder Open(string title, string kind) => new StringBuilder()
        .Append($"<svg class=\"chart chart-{kind}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{Escape(title)}\">")
        .Append($"<title>{Escape(title)}</title>")
        .Append($"<rect class=\"plot\" x=\"{Left}\" y=\"{Top}\" width=\"{PlotW}\" height=\"{PlotH}\" fill=\"#ffffff\" stroke=\"#c9ced6\"/>");

    private static string Empty(string title, string message) =>
        Open(title, "empty").Append($"<text x=\"{W / 2}\" y=\"{H / 2}\" text-anchor=\"middle\" fill=\"#6b7280\" font-size=\"13\">{Escape(message)}</text></svg>").ToString();

    private static void Axes(StringBuilder sb, double x0, double x1, double xStep, double y0, double y1, double yStep, string xLabel, string yLabel)
    {
        var yDecimals = Decimals(yStep);
        for (int k = 0; ; k++)
        {
            var y = y0 + k * yStep;
            if (y > y1 + yStep * 1e-6) break;
            var py = Coord(Top + PlotH - (y - y0) / (y1 - y0) * PlotH);
            sb.Append($"<line x1=\"{Left}\" x2=\"{Left + PlotW}\" y1=\"{py}\" y2=\"{py}\" stroke=\"#e6e9ee\"/>");
            sb.Append($"<text x=\"{Left - 6}\" y=\"{py}\" dy=\"4\" text-anchor=\"end\" font-size=\"11\" fill=\"#4b5563\">{Tick(y, yStep, yDecimals)}</text>");
        }
        var xDecimals = Decimals(xStep);
        for (var x = Math.Ceiling(x0 / xStep - 1e-9) * xStep; x <= x1 + xStep * 1e-6; x += xStep)
        {
            var px = Coord(Left + (x - x0) / (x1 - x0) * PlotW);
            sb.Append($"<line x1=\"{px}\" x2=\"{px}\" y1=\"{Top + PlotH}\" y2=\"{Top + PlotH + 4}\" stroke=\"#9aa1ab\"/>");
            sb.Append($"<text x=\"{px}\" y=\"{Top + PlotH + 16}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#4b5563\">{Tick(x, xStep, xDecimals)}</text>");
        }
        sb.Append($"<text x=\"{Left + PlotW / 2}\" y=\"{H - 4}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#374151\">{Escape(xLabel)}</text>");
        sb.Append($"<text transform=\"translate(13 {Top + PlotH / 2}) rotate(-90)\" text-anchor=\"middle\" font-size=\"11\" fill=\"#374151\">{Escape(yLabel)}</text>");
    }

    private static (double Lo, double Hi, double Step) XRange(List<double> xs, double pad = 0)
    {
        double lo = xs.Min() - pad, hi = xs.Max() + pad;
        if (hi - lo < 1) { lo -= 0.5; hi += 0.5; }
        var (_, _, step) = NiceRange(lo, hi, 8);
        return (lo, hi, Math.Max(1, Math.Round(step)));
    }

    /// <summary>A range covering [min, max] with "nice" tick steps (1, 2 or 5 × 10^k), about <paramref name="ticks"/> ticks.</summary>
    internal static (double Lo, double Hi, double Step) NiceRange(double min, double max, int ticks)
    {
        if (max - min <= Math.Abs(max) * 1e-12)
        {
            var pad = Math.Abs(max) > 0 ? Math.Abs(max) * 0.1 : 1;
            min -= pad;
            max += pad;
        }
        var rough = (max - min) / ticks;
        var mag = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        var norm = rough / mag;
        var step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
        return (Math.Floor(min / step) * step, Math.Ceiling(max / step) * step, step);
    }

    private static int Decimals(double step) => Math.Clamp((int)-Math.Floor(Math.Log10(step) + 1e-9), 0, 8);

    private static string Tick(double v, double step, int decimals)
    {
        if (Math.Abs(v) < step * 1e-6) return "0";
        // Short labels: exponent form for very large values and for steps below 1e-4 ("3.3e-4", not "0.00033").
        return Math.Abs(v) >= 1e6 || decimals > 4
            ? v.ToString("0.##e0", CultureInfo.InvariantCulture)
            : v.ToString("F" + decimals, CultureInfo.InvariantCulture);
    }

    private static IEnumerable<List<int>> Segments(int count, Func<int, bool> ok)
    {
        var current = new List<int>();
        for (int i = 0; i < count; i++)
        {
            if (ok(i))
            {
                current.Add(i);
            }
            else if (current.Count > 0)
            {
                yield return current;
                current = [];
            }
        }
        if (current.Count > 0) yield return current;
    }
}
