using Ddpo.Models.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPModel</c>: both towers, their bias-free projections and the learned temperature
/// <c>logit_scale</c> (PickScore_v1, openai/clip-vit-large-patch14 as Flow-GRPO's CLIPScore uses it). State-dict
/// names are transformers' (<c>text_model.…</c>, <c>vision_model.…</c>, <c>visual_projection.weight</c>,
/// <c>text_projection.weight</c>, <c>logit_scale</c>).
/// </summary>
internal sealed class ClipModel : nn.Module
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly ClipTextModel text_model;
    private readonly ClipVisionTransformer vision_model;
    private readonly Linear visual_projection;
    private readonly Linear text_projection;
    private readonly Parameter logit_scale;
#pragma warning restore IDE1006

    /// <summary>Builds the (uninitialised) model on <paramref name="device"/> (null: the CPU; meta: shapes only); load weights with <see cref="FromPretrained"/>.</summary>
    internal ClipModel(ClipModelConfig config, Device? device = null) : base("clip")
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        text_model = new ClipTextModel(config.Text, initialize: false, generator: null, device);
        vision_model = new ClipVisionTransformer(config.Vision, device);
        visual_projection = nn.Linear(config.Vision.HiddenSize, config.ProjectionDim, hasBias: false, device: device);
        text_projection = nn.Linear(config.Text.HiddenSize, config.ProjectionDim, hasBias: false, device: device);
        logit_scale = new Parameter(empty(Array.Empty<long>(), ScalarType.Float32, device).fill_(config.LogitScaleInit));
        RegisterComponents();
    }

    /// <summary>The model's configuration.</summary>
    public ClipModelConfig Config { get; }

    /// <summary>
    /// Loads a <c>CLIPModel</c> folder (<c>config.json</c>, <c>model.safetensors</c>, possibly sharded) strictly,
    /// converted to <paramref name="dtype"/> on <paramref name="device"/>, in eval mode. Only the legacy
    /// <c>*.embeddings.position_ids</c> buffers are ignored; a missing, unexpected or wrongly shaped weight is a
    /// <see cref="ModelLoadException"/> naming the file and key.
    /// </summary>
    public static ClipModel FromPretrained(string directory, ScalarType dtype, Device device)
    {
        var config = ClipModelConfig.Load(Path.Combine(directory, "config.json"));
        var model = new ClipModel(config);
        try
        {
            ClipWeights.LoadInto(model, directory, Rename);
            model.eval();
            if (dtype != ScalarType.Float32) model.to(dtype);
            if (device.type != DeviceType.CPU) model.to(device);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The parameters' dtype and device (inputs are moved there).</summary>
    public Tensor Anchor => visual_projection.weight!;

    /// <summary><c>logit_scale.exp()</c> as a scalar tensor in the model's dtype.</summary>
    public Tensor LogitScaleExp() => logit_scale.exp();

    /// <summary>transformers' <c>get_image_features</c>: the projected pooled class token [B, projection_dim] of preprocessed pixels (not normalised).</summary>
    public Tensor GetImageFeatures(Tensor pixelValues)
    {
        ArgumentNullException.ThrowIfNull(pixelValues);
        var c = Config.Vision;
        if (pixelValues.dim() != 4 || pixelValues.shape[1] != c.NumChannels || pixelValues.shape[2] != c.ImageSize || pixelValues.shape[3] != c.ImageSize)
        {
            throw new ArgumentException(
                $"pixel values must be [batch, {c.NumChannels}, {c.ImageSize}, {c.ImageSize}], got [{string.Join(", ", pixelValues.shape)}]", nameof(pixelValues));
        }
        using var scope = NewDisposeScope();
        var pooled = vision_model.forward(pixelValues.to(Anchor.dtype, Anchor.device));
        return visual_projection.forward(pooled).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// transformers' <c>get_text_features</c> of token ids [B, S] (S ≤ max positions): the projected pooled output
    /// (first <c>eos_token_id</c>, or the arg-max id for the legacy <c>eos_token_id</c> 2). Padding after the end
    /// token needs no attention mask: the causal mask keeps it out of every position up to the pooled one.
    /// </summary>
    public Tensor GetTextFeatures(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var (_, pooled) = text_model.Encode(inputIds);
        return text_projection.forward(pooled).MoveToOuterDisposeScope();
    }

    private static Dictionary<string, Tensor> Rename(IReadOnlyDictionary<string, Tensor> file, string source)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (key, value) in file)
        {
            // Buffers older transformers versions wrote (non-persistent since 4.31).
            if (key is "text_model.embeddings.position_ids" or "vision_model.embeddings.position_ids") continue;
            result.Add(key, value);
        }
        return result;
    }
}
