using System.Text.Json;
using Ddpo.Models.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPTextModel</c> (the Stable Diffusion text encoder): token + position
/// embeddings, a causal pre-norm transformer and a final layer norm. State-dict names are
/// transformers' without the <c>text_model.</c> prefix (<c>embeddings.token_embedding.weight</c>, ...).
/// </summary>
internal sealed class ClipTextModel : nn.Module
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly ClipTextEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm final_layer_norm;
#pragma warning restore IDE1006

    /// <summary>Creates a randomly initialised model (transformers' initialisation; layer norms at identity).</summary>
    public ClipTextModel(ClipTextConfig config, Generator? generator = null) : this(config, initialize: true, generator) { }

    /// <summary>
    /// Builds the model on <paramref name="device"/> (null: the CPU; meta: shapes only), randomly initialised or not
    /// (<paramref name="initialize"/> false: for loading weights).
    /// </summary>
    internal ClipTextModel(ClipTextConfig config, bool initialize, Generator? generator, Device? device = null) : base("text_model")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        embeddings = new ClipTextEmbeddings(config.VocabSize, config.MaxPositionEmbeddings, config.HiddenSize, device);
        encoder = new ClipEncoder(config.NumHiddenLayers, config.HiddenSize, config.IntermediateSize,
            config.NumAttentionHeads, config.HiddenAct, config.LayerNormEps, causal: true, device);
        final_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
        if (initialize)
        {
            embeddings.Initialize(generator);
            encoder.Initialize(generator);
            ClipInit.LayerNorm(final_layer_norm);
        }
    }

    /// <summary>The model's configuration.</summary>
    public ClipTextConfig Config { get; }

    /// <summary>Prefix of the weight names in files written by <see cref="SavePretrained"/> (transformers 4.x layout).</summary>
    public const string WeightPrefix = "text_model.";

    /// <summary>
    /// Loads a transformers <c>CLIPTextModel</c> folder (<c>config.json</c> and <c>model.safetensors</c>,
    /// possibly sharded) on the CPU in float32. Weight names may carry the <c>text_model.</c> prefix or
    /// not; a full <c>CLIPModel</c> file's vision tower and projections are ignored; anything else
    /// must match exactly (<see cref="ModelLoadException"/> lists the differences).
    /// </summary>
    public static ClipTextModel FromPretrained(string directory) => FromPretrained(directory, ScalarType.Float32, CPU);

    /// <summary>Loads as <see cref="FromPretrained(string)"/>, then converts to <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public static ClipTextModel FromPretrained(string directory, ScalarType dtype, Device device)
    {
        var config = ClipTextConfig.Load(Path.Combine(directory, "config.json"));
        var model = new ClipTextModel(config, initialize: false, generator: null);
        try
        {
            ClipWeights.LoadInto(model, directory, ClipWeights.ForText);
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
    /// Encodes token ids [B, S] (S ≤ <c>max_position_embeddings</c>) with the causal mask. Returns the
    /// final-layer-normed hidden states [B, S, hidden] and the pooled output [B, hidden]: the hidden state
    /// at the first <c>eos_token_id</c> (at the arg-max id when <c>eos_token_id</c> is 2, as transformers does
    /// for legacy configs).
    /// </summary>
    public (Tensor LastHiddenState, Tensor PooledOutput) Encode(Tensor inputIds)
    {
        var (last, penultimate, pooled) = EncodeWithPenultimate(inputIds);
        penultimate.Dispose();
        return (last, pooled);
    }

    /// <summary>
    /// As <see cref="Encode"/>, plus the penultimate hidden state [B, S, hidden]: transformers'
    /// <c>hidden_states[-2]</c>, the input of the last encoder layer, not final-layer-normed (SDXL, SD3).
    /// The caller owns the three tensors.
    /// </summary>
    public (Tensor LastHiddenState, Tensor PenultimateHiddenState, Tensor PooledOutput) EncodeWithPenultimate(Tensor inputIds)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.dim() != 2 || !torch.is_integral(inputIds.dtype))
        {
            throw new ArgumentException($"input ids must be an integer tensor [batch, sequence], got {inputIds.dtype} [{string.Join(", ", inputIds.shape)}]", nameof(inputIds));
        }
        if (inputIds.shape[1] > Config.MaxPositionEmbeddings || inputIds.shape[1] == 0)
        {
            throw new ArgumentException($"sequence length {inputIds.shape[1]} is outside 1..{Config.MaxPositionEmbeddings} (max_position_embeddings)", nameof(inputIds));
        }
        using var scope = NewDisposeScope();
        var ids = inputIds.to(ScalarType.Int64, embeddings.TokenWeight.device);
        if (ids.numel() > 0)
        {
            long lo = ids.min().item<long>(), hi = ids.max().item<long>();
            if (lo < 0 || hi >= Config.VocabSize)
            {
                throw new ArgumentException($"token ids must lie in 0..{Config.VocabSize - 1} (vocab_size), got {lo}..{hi}", nameof(inputIds));
            }
        }
        var (encoded, penultimate) = encoder.ForwardWithPenultimate(embeddings.forward(ids));
        var hidden = final_layer_norm.forward(encoded);
        var eosIndex = Config.EosTokenId == 2
            ? ids.argmax(-1)
            : ids.eq(Config.EosTokenId).to(ScalarType.Int32).argmax(-1);
        long b = hidden.shape[0], e = hidden.shape[2];
        var pooled = hidden.gather(1, eosIndex.view(b, 1, 1).expand(b, 1, e)).squeeze(1);
        return (hidden.MoveToOuterDisposeScope(), penultimate.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Writes <c>config.json</c> and <c>model.safetensors</c> (float32 as stored, names with the
    /// <c>text_model.</c> prefix, the layout of Stable Diffusion <c>text_encoder</c> folders, which
    /// transformers 4 and 5 and <see cref="FromPretrained(string)"/> all read).
    /// </summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"),
            Config.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var tensors = state_dict().ToDictionary(kv => WeightPrefix + kv.Key, kv => kv.Value);
        SafetensorsFile.SaveAtomic(Path.Combine(directory, "model.safetensors"), tensors);
    }
}
