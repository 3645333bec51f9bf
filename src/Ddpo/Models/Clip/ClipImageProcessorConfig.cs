using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Imaging.Resampling;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPImageProcessor</c> settings from a processor folder's <c>preprocessor_config.json</c>:
/// shortest-edge resize, square centre crop, rescale factor, mean and standard deviation. Only the pipeline the CLIP
/// rewards use is accepted (every <c>do_*</c> step on, resample bilinear or bicubic, a square crop no larger than
/// the resized shorter side); anything else is a <see cref="ConfigException"/> naming the file and field.
/// </summary>
internal sealed class ClipImageProcessorConfig
{
    /// <summary>The file name in a processor folder.</summary>
    public const string FileName = "preprocessor_config.json";

    /// <summary>Shorter side after resizing (<c>size.shortest_edge</c>).</summary>
    public int ShortestEdge { get; init; } = 224;

    /// <summary>Side of the square centre crop (<c>crop_size</c>).</summary>
    public int CropSize { get; init; } = 224;

    /// <summary>PIL filter of the resize (<c>resample</c>: 2 bilinear, 3 bicubic).</summary>
    public ResampleFilter Resample { get; init; } = ResampleFilter.Bicubic;

    /// <summary>Multiplier from bytes to [0, 1] (<c>rescale_factor</c>, 1/255).</summary>
    public double RescaleFactor { get; init; } = 1 / 255.0;

    /// <summary>Per-channel mean (<c>image_mean</c>).</summary>
    public double[] Mean { get; init; } = [.. ClipImagePreprocessor.ClipMean];

    /// <summary>Per-channel standard deviation (<c>image_std</c>).</summary>
    public double[] Std { get; init; } = [.. ClipImagePreprocessor.ClipStd];

    /// <summary>Reads <c>preprocessor_config.json</c> from a processor folder.</summary>
    public static ClipImageProcessorConfig LoadFolder(string folder) => FromJson(JsonConfig.Load(Path.Combine(folder, FileName)));

    /// <summary>Reads a parsed <c>preprocessor_config.json</c>.</summary>
    public static ClipImageProcessorConfig FromJson(JsonConfig json)
    {
        foreach (var step in new[] { "do_resize", "do_center_crop", "do_rescale", "do_normalize" })
        {
            if (!json.GetBool(step, true)) throw new ConfigException($"{json.Source}: field '{step}' = false is not supported (the CLIP rewards run every preprocessing step)");
        }
        var type = json.GetString("image_processor_type", "CLIPImageProcessor");
        if (type != "CLIPImageProcessor") throw new ConfigException($"{json.Source}: field 'image_processor_type' = \"{type}\" is not supported (expected CLIPImageProcessor)");
        int resample = json.GetInt("resample", 3);
        var config = new ClipImageProcessorConfig
        {
            ShortestEdge = Side(json, "size", "shortest_edge", 224),
            CropSize = Side(json, "crop_size", null, 224),
            Resample = resample switch
            {
                2 => ResampleFilter.Bilinear,
                3 => ResampleFilter.Bicubic,
                _ => throw new ConfigException($"{json.Source}: field 'resample' = {resample} is not supported (2 = bilinear or 3 = bicubic)"),
            },
            RescaleFactor = json.GetDouble("rescale_factor", 1 / 255.0),
            Mean = Triple(json, "image_mean", ClipImagePreprocessor.ClipMean),
            Std = Triple(json, "image_std", ClipImagePreprocessor.ClipStd),
        };
        if (config.CropSize > config.ShortestEdge)
        {
            throw new ConfigException($"{json.Source}: field 'crop_size' = {config.CropSize} is larger than size.shortest_edge = {config.ShortestEdge} (the crop would need padding, which is not supported)");
        }
        if (config.Std.Any(s => s <= 0)) throw new ConfigException($"{json.Source}: field 'image_std' must be positive");
        return config;
    }

    // size/crop_size are {"shortest_edge": n}, {"height": n, "width": n} or a bare integer (older processors).
    private static int Side(JsonConfig json, string name, string? shortestKey, int defaultValue)
    {
        var node = json.Root[name];
        if (node is null) return defaultValue;
        int value;
        if (node is JsonObject o)
        {
            var inner = new JsonConfig(o, $"{json.Source} ({name})");
            if (shortestKey is not null && inner.Has(shortestKey))
            {
                value = inner.GetInt(shortestKey, 0);
            }
            else
            {
                int h = inner.GetInt("height", -1), w = inner.GetInt("width", -1);
                if (h != w || h < 0)
                {
                    throw new ConfigException($"{json.Source}: field '{name}' = {node.ToJsonString()} is not supported (expected {(shortestKey is null ? "" : $"{{\"{shortestKey}\": n}} or ")}a square {{\"height\": n, \"width\": n}})");
                }
                value = h;
            }
        }
        else
        {
            value = json.GetInt(name, defaultValue);
        }
        if (value < 1) throw new ConfigException($"{json.Source}: field '{name}' must be positive, got {value}");
        return value;
    }

    private static double[] Triple(JsonConfig json, string name, double[] defaultValue)
    {
        var node = json.Root[name];
        if (node is null) return [.. defaultValue];
        try
        {
            if (node is JsonArray a && a.Count == 3) return a.Select(x => x!.GetValue<double>()).ToArray();
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or NullReferenceException)
        {
        }
        throw new ConfigException($"{json.Source}: field '{name}' expected an array of 3 numbers, got {node.ToJsonString()}");
    }
}
