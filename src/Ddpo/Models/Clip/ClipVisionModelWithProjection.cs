using System.Text.Json;
using Ddpo.Models.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPVisionModelWithProjection</c>: the CLIP image tower and its projection
/// (e.g. CLIP ViT-L/14 for the LAION aesthetic predictor). State-dict names are transformers'
/// (<c>vision_model.…</c>, <c>visual_projection.weight</c>).
/// </summary>
internal sealed class ClipVisionModelWithProjection : nn.Module
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly ClipVisionTransformer vision_model;
    private readonly Linear visual_projection;
#pragma warning restore IDE1006

    /// <summary>Creates a randomly initialised model (transformers' initialisation; layer norms at identity).</summary>
    public ClipVisionModelWithProjection(ClipVisionConfig config, Generator? generator = null) : this(config, initialize: true, generator) { }

    private ClipVisionModelWithProjection(ClipVisionConfig config, bool initialize, Generator? generator) : base("clip_vision")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        vision_model = new ClipVisionTransformer(config);
        visual_projection = nn.Linear(config.HiddenSize, config.ProjectionDim, hasBias: false);
        RegisterComponents();
        if (initialize)
        {
            vision_model.Initialize(generator);
            ClipInit.Normal(visual_projection.weight!, Math.Pow(config.HiddenSize, -0.5), generator);
        }
    }

    /// <summary>The model's configuration.</summary>
    public ClipVisionConfig Config { get; }

    /// <summary>
    /// Loads a transformers <c>CLIPVisionModelWithProjection</c> or full <c>CLIPModel</c> folder
    /// (<c>config.json</c>, <c>model.safetensors</c>, possibly sharded) on the CPU in float32. Weight names
    /// may carry the <c>vision_model.</c> prefix or not; a full model's text tower, <c>text_projection</c> and
    /// <c>logit_scale</c> are ignored; anything else must match exactly (<see cref="ModelLoadException"/>).
    /// </summary>
    public static ClipVisionModelWithProjection FromPretrained(string directory) => FromPretrained(directory, ScalarType.Float32, CPU);

    /// <summary>Loads as <see cref="FromPretrained(string)"/>, then converts to <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public static ClipVisionModelWithProjection FromPretrained(string directory, ScalarType dtype, Device device)
    {
        var config = ClipVisionConfig.Load(Path.Combine(directory, "config.json"));
        var model = new ClipVisionModelWithProjection(config, initialize: false, generator: null);
        try
        {
            ClipWeights.LoadInto(model, directory, ClipWeights.ForVision);
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

    /// <summary>
    /// Image embeddings [B, projection_dim] of pixel values [B, num_channels, image_size, image_size]
    /// (already preprocessed, see <see cref="ClipImagePreprocessor"/>): the projection of the
    /// post-layer-normed class token, not normalised. Computed in the model's dtype and device.
    /// </summary>
    public Tensor GetImageEmbeds(Tensor pixelValues)
    {
        ArgumentNullException.ThrowIfNull(pixelValues);
        var c = Config;
        if (pixelValues.dim() != 4 || pixelValues.shape[1] != c.NumChannels || pixelValues.shape[2] != c.ImageSize || pixelValues.shape[3] != c.ImageSize)
        {
            throw new ArgumentException(
                $"pixel values must be [batch, {c.NumChannels}, {c.ImageSize}, {c.ImageSize}], got [{string.Join(", ", pixelValues.shape)}]", nameof(pixelValues));
        }
        using var scope = NewDisposeScope();
        var weight = vision_model.PatchWeight;
        var pooled = vision_model.forward(pixelValues.to(weight.dtype, weight.device));
        return visual_projection.forward(pooled).MoveToOuterDisposeScope();
    }

    /// <summary>Writes <c>config.json</c> and <c>model.safetensors</c> with transformers' names.</summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"),
            Config.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        SafetensorsFile.SaveAtomic(Path.Combine(directory, "model.safetensors"), state_dict());
    }
}
