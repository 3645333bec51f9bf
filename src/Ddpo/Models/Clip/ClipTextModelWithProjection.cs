using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>
/// What <see cref="ClipTextModelWithProjection.Encode"/> returns (the caller owns the tensors): the final-layer-normed
/// hidden states [B, S, hidden], transformers' <c>hidden_states[-2]</c> [B, S, hidden] (the input of the last
/// encoder layer, not normed) and the projected pooled output [B, projection_dim].
/// </summary>
internal sealed record ClipTextOutput(Tensor LastHiddenState, Tensor PenultimateHiddenState, Tensor TextEmbeds);

/// <summary>
/// transformers' <c>CLIPTextModelWithProjection</c> (SDXL's <c>text_encoder_2</c>, SD3's <c>text_encoder</c> and
/// <c>text_encoder_2</c>): a <see cref="ClipTextModel"/> under <c>text_model.</c> and a bias-free
/// <c>text_projection</c> [projection_dim, hidden] applied to the pooled output.
/// </summary>
internal sealed class ClipTextModelWithProjection : nn.Module
{
    /// <summary>The architecture name written to and expected in <c>config.json</c>.</summary>
    public const string Architecture = "CLIPTextModelWithProjection";

#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly ClipTextModel text_model;
    private readonly Linear text_projection;
#pragma warning restore IDE1006

    /// <summary>Creates a randomly initialised model (transformers' initialisation; layer norms at identity).</summary>
    public ClipTextModelWithProjection(ClipTextConfig config, Generator? generator = null) : this(config, initialize: true, generator) { }

    /// <summary>Builds the model on <paramref name="device"/> (null: the CPU; meta: shapes only), randomly initialised or not.</summary>
    internal ClipTextModelWithProjection(ClipTextConfig config, bool initialize, Generator? generator, Device? device = null) : base("clip_text_with_projection")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        text_model = new ClipTextModel(config, initialize, generator, device);
        text_projection = nn.Linear(config.HiddenSize, config.ProjectionDim, hasBias: false, device: device);
        RegisterComponents();
        if (initialize)
        {
            ClipInit.Normal(text_projection.weight!, Math.Pow(config.HiddenSize, -0.5), generator);
        }
    }

    /// <summary>The model's configuration.</summary>
    public ClipTextConfig Config { get; }

    /// <summary>
    /// Loads a transformers <c>CLIPTextModelWithProjection</c> (or full <c>CLIPModel</c>) folder (<c>config.json</c>,
    /// <c>model.safetensors</c>, possibly sharded) strictly, converted to <paramref name="dtype"/> on
    /// <paramref name="device"/>, in eval mode. A full model's vision tower, <c>visual_projection</c> and
    /// <c>logit_scale</c> and the legacy <c>position_ids</c> buffer are ignored; anything else must match exactly.
    /// </summary>
    public static ClipTextModelWithProjection FromPretrained(string directory, ScalarType dtype, Device device)
    {
        var config = ClipTextConfig.Load(Path.Combine(directory, "config.json"));
        var model = new ClipTextModelWithProjection(config, initialize: false, generator: null);
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

    /// <summary>
    /// Encodes token ids [B, S] as <see cref="ClipTextModel.Encode"/> does (causal; pooled at the first
    /// <c>eos_token_id</c>, or at the arg-max id for the legacy <c>eos_token_id</c> 2) and projects the pooled output.
    /// </summary>
    public ClipTextOutput Encode(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var (last, penultimate, pooled) = text_model.EncodeWithPenultimate(inputIds);
        var embeds = text_projection.forward(pooled);
        return new ClipTextOutput(last.MoveToOuterDisposeScope(), penultimate.MoveToOuterDisposeScope(), embeds.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Writes <c>config.json</c> (architectures <c>CLIPTextModelWithProjection</c>, with <c>projection_dim</c>) and
    /// <c>model.safetensors</c> (float32 as stored; <c>text_model.*</c> and <c>text_projection.weight</c>).
    /// </summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        var json = Config.ToJson();
        json["architectures"] = new JsonArray(Architecture);
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        SafetensorsFile.SaveAtomic(Path.Combine(directory, "model.safetensors"), state_dict());
    }

    /// <summary>Keeps the text tower (keys with the <c>text_model.</c> prefix) and <c>text_projection.weight</c>.</summary>
    private static Dictionary<string, Tensor> Rename(IReadOnlyDictionary<string, Tensor> file, string source)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (key, value) in file)
        {
            // A full CLIPModel file's image side, and a buffer transformers 4.3x still wrote.
            if (key.StartsWith("vision_model.", StringComparison.Ordinal) || key is "visual_projection.weight" or "logit_scale"
                or "text_model.embeddings.position_ids") continue;
            result.Add(key, value);
        }
        return result;
    }
}
