using System.Globalization;
using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Text;

/// <summary>BERTScore precision, recall and F1, one value per candidate-reference pair.</summary>
internal sealed record BertScoreResult(float[] Precision, float[] Recall, float[] F1);

/// <summary>
/// A bert-score rescaling baseline (the precision, recall and F1 of random sentence pairs for one model
/// and layer): scores are rescaled as <c>(s - b) / (1 - b)</c>, bert-score's <c>rescale_with_baseline</c>.
/// </summary>
internal sealed record BertScoreBaseline(double Precision, double Recall, double F1)
{
    /// <summary>
    /// Reads a bert-score baseline file (<c>rescale_baseline/LANG/MODEL.tsv</c>: a header, then rows
    /// <c>LAYER,P,R,F</c> comma-separated) and returns the row at index <paramref name="numLayers"/>, as bert-score does.
    /// </summary>
    public static BertScoreBaseline Load(string path, int numLayers)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: BERTScore baseline file not found");
        var rows = File.ReadAllLines(path).Skip(1).Where(l => l.Trim().Length > 0).ToArray();
        if (numLayers < 0 || numLayers >= rows.Length)
        {
            throw new ConfigException($"{path}: no baseline row for num_layers = {numLayers} (the file has rows 0..{rows.Length - 1})");
        }
        var cells = rows[numLayers].Split(',', '\t');
        if (cells.Length < 4
            || !double.TryParse(cells[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var p)
            || !double.TryParse(cells[2], NumberStyles.Float, CultureInfo.InvariantCulture, out var r)
            || !double.TryParse(cells[3], NumberStyles.Float, CultureInfo.InvariantCulture, out var f))
        {
            throw new ConfigException($"{path}: row {numLayers + 2} is not LAYER,P,R,F numbers: '{rows[numLayers]}'");
        }
        return new BertScoreBaseline(p, r, f);
    }

    /// <summary>Rescales one score: <c>(s - b) / (1 - b)</c>.</summary>
    public static double Rescale(double score, double baseline) => (score - baseline) / (1 - baseline);
}

/// <summary>How BERTScore is computed (bert-score's <c>num_layers</c>, <c>idf</c> and <c>rescale_with_baseline</c>).</summary>
internal sealed record BertScoreOptions
{
    /// <summary>Token embeddings after this many encoder layers (0 = the embedding layer); null = all layers.</summary>
    public int? NumLayers { get; init; }

    /// <summary>Weight tokens by idf computed over each call's references (bert-score's <c>score(..., idf=True)</c>).</summary>
    public bool Idf { get; init; }

    /// <summary>When set, precision, recall and F1 are rescaled with it.</summary>
    public BertScoreBaseline? Baseline { get; init; }

    /// <summary>Sentences encoded per forward pass.</summary>
    public int BatchSize { get; init; } = 64;
}
