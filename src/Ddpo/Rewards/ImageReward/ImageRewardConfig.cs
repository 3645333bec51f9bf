using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Blip;
using Ddpo.Models.Loading;

namespace Ddpo.Rewards.ImageReward;

/// <summary>
/// The sizes and constants of an ImageReward model. Defaults are ImageReward-v1.0 as <c>ImageReward.__init__</c> hard-codes
/// them (THUDM/ImageReward <c>ImageReward/ImageReward.py</c> at c1392c6: 224 px, BLIP ViT-L/16, <c>MLP(768)</c>,
/// mean 0.16717362830052426, std 1.0333394966054072); a model folder's <c>config.json</c> (the format of the ddpo
/// fixtures: <c>image_size</c>, <c>vit</c>, <c>mlp_input_size</c>, …) overrides them and is read strictly.
/// </summary>
internal sealed class ImageRewardConfig
{
    private static readonly string[] Known =
        ["image_size", "vit", "mlp_input_size", "mlp_hidden", "mean", "std", "embed_dim", "med_config", "tokenizer", "text_max_length"];

    private static readonly string[] KnownVit = ["width", "depth", "heads", "patch_size", "mlp_ratio", "qkv_bias", "norm", "drop_path_rate"];

    /// <summary>The LayerNorm BLIP's ViT uses (the only <c>vit.norm</c> accepted).</summary>
    public const string VitNorm = "LayerNorm eps 1e-6";

    /// <summary>ImageReward's score mean (<c>self.mean</c>).</summary>
    public const double DefaultMean = 0.16717362830052426;

    /// <summary>ImageReward's score standard deviation (<c>self.std</c>).</summary>
    public const double DefaultStd = 1.0333394966054072;

    /// <summary>The image encoder.</summary>
    public BlipVisionConfig Vision { get; init; } = new();

    /// <summary>The text encoder (<c>med_config.json</c>).</summary>
    public MedConfig Text { get; init; } = MedConfig.BertBase;

    /// <summary>Hidden widths of the head after its input (<c>MLP</c>: 1024, 128, 64, 16, then 1).</summary>
    public int[] MlpHidden { get; init; } = [1024, 128, 64, 16];

    /// <summary>Width of BLIP's contrastive projections (<c>embed_dim</c>, kept for the checkpoint's <c>vision_proj</c>/<c>text_proj</c>).</summary>
    public int EmbedDim { get; init; } = 256;

    /// <summary>Score normalisation: <c>(mlp − Mean) / Std</c>.</summary>
    public double Mean { get; init; } = DefaultMean;

    /// <summary>See <see cref="Mean"/>.</summary>
    public double Std { get; init; } = DefaultStd;

    /// <summary>Token length the prompts are padded and truncated to (<c>max_length=35</c> in <c>ImageReward.score</c>).</summary>
    public int TextMaxLength { get; init; } = 35;

    /// <summary>The name of the MED config file beside <c>config.json</c>.</summary>
    public string MedConfigFile { get; init; } = "med_config.json";

    /// <summary>ImageReward-v1.0.</summary>
    public static ImageRewardConfig V1 { get; } = new();

    /// <summary>
    /// Reads <paramref name="path"/> (<c>config.json</c>) and the MED config it names (beside it). Unknown or wrong-typed
    /// fields are a <see cref="ConfigException"/> naming the file and field.
    /// </summary>
    public static ImageRewardConfig Load(string path)
    {
        var json = JsonConfig.Load(path);
        RejectUnknown(json, Known, "");
        BlipVisionConfig vision = new() { ImageSize = json.GetInt("image_size", 224) };
        if (json.Root["vit"] is JsonNode vitNode)
        {
            if (vitNode is not JsonObject vitObject) throw new ConfigException($"{path}: field 'vit' expected an object, got {vitNode.ToJsonString()}");
            var vit = new JsonConfig(vitObject, path + " (vit)");
            RejectUnknown(vit, KnownVit, "vit.");
            if (!vit.GetBool("qkv_bias", true)) throw new ConfigException($"{path}: field 'vit.qkv_bias' = false is not supported (BLIP's ViT has qkv biases)");
            var norm = vit.GetString("norm", VitNorm);
            if (norm != VitNorm) throw new ConfigException($"{path}: field 'vit.norm' = \"{norm}\" is not supported (expected \"{VitNorm}\")");
            vit.GetDouble("drop_path_rate", 0.1); // training only
            vision = new BlipVisionConfig
            {
                ImageSize = vision.ImageSize,
                Width = vit.GetInt("width", 1024),
                Depth = vit.GetInt("depth", 24),
                Heads = vit.GetInt("heads", 16),
                PatchSize = vit.GetInt("patch_size", 16),
                MlpRatio = vit.GetDouble("mlp_ratio", 4.0),
            };
        }
        vision.Validate(path);
        json.GetStringOrNull("tokenizer"); // a description; the tokenizer folder is configured separately
        var medName = json.GetString("med_config", "med_config.json");
        var medPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, medName);
        var text = MedConfig.Load(medPath);
        int mlpInput = json.GetInt("mlp_input_size", text.HiddenSize);
        if (mlpInput != text.HiddenSize)
        {
            throw new ConfigException($"{path}: field 'mlp_input_size' = {mlpInput} differs from the text encoder's hidden_size = {text.HiddenSize} in {medPath} (the head reads the [CLS] token)");
        }
        var config = new ImageRewardConfig
        {
            Vision = vision,
            Text = text,
            MlpHidden = json.GetIntArray("mlp_hidden", [1024, 128, 64, 16]),
            EmbedDim = json.GetInt("embed_dim", 256),
            Mean = json.GetDouble("mean", DefaultMean),
            Std = json.GetDouble("std", DefaultStd),
            TextMaxLength = json.GetInt("text_max_length", 35),
            MedConfigFile = medName,
        };
        config.Validate(path);
        return config;
    }

    /// <summary>Checks the head, the constants and the text length.</summary>
    public void Validate(string source)
    {
        if (MlpHidden.Length != 4 || MlpHidden.Any(w => w <= 0))
        {
            throw new ConfigException($"{source}: field 'mlp_hidden' = [{string.Join(", ", MlpHidden)}], expected four positive widths (ImageReward's MLP: 1024, 128, 64, 16)");
        }
        if (EmbedDim <= 0) throw new ConfigException($"{source}: field 'embed_dim' = {EmbedDim}, expected a positive integer");
        if (!double.IsFinite(Mean)) throw new ConfigException($"{source}: field 'mean' = {Mean}, expected a finite number");
        if (!(Std > 0) || !double.IsFinite(Std)) throw new ConfigException($"{source}: field 'std' = {Std}, expected a positive number");
        if (TextMaxLength < 2 || TextMaxLength > Text.MaxPositionEmbeddings)
        {
            throw new ConfigException($"{source}: field 'text_max_length' = {TextMaxLength}, expected 2..{Text.MaxPositionEmbeddings} (max_position_embeddings)");
        }
    }

    private static void RejectUnknown(JsonConfig json, string[] known, string prefix)
    {
        foreach (var key in json.Root.Select(kv => kv.Key))
        {
            if (!known.Contains(key))
            {
                throw new ConfigException($"{json.Source}: unknown field '{prefix}{key}' (expected: {string.Join(", ", known.Select(k => prefix + k))})");
            }
        }
    }
}
