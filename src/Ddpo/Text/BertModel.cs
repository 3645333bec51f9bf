using System.Text.Json;
using Ddpo.Models.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Text;

/// <summary>
/// transformers' <c>BertModel</c> encoder (embeddings and transformer layers; the pooler is not needed
/// and not loaded) in TorchSharp, with transformers' state-dict names (<c>embeddings.word_embeddings.weight</c>,
/// <c>encoder.layer.0.attention.self.query.weight</c>, ...). Used for BERTScore token embeddings.
/// </summary>
internal sealed class BertModel : nn.Module
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
#pragma warning restore IDE1006

    /// <summary>Weight files tried in a model folder, in order (single or sharded).</summary>
    public static readonly string[] WeightFiles = ["model.safetensors"];

    /// <summary>A randomly initialised encoder (transformers' initialisation: N(0, 0.02), zero biases, LayerNorm at identity).</summary>
    public BertModel(BertConfig config, Generator? generator = null) : this(config, initialize: true, generator) { }

    private BertModel(BertConfig config, bool initialize, Generator? generator) : base("bert")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        embeddings = new BertEmbeddings(config);
        encoder = new BertEncoder(config);
        RegisterComponents();
        if (initialize) Initialize(generator);
        eval();
    }

    /// <summary>The configuration.</summary>
    public BertConfig Config { get; }

    /// <summary>
    /// Loads a transformers folder (<c>config.json</c> with <c>model_type = "bert"</c>, <c>model.safetensors</c>)
    /// in float32 on <paramref name="device"/> (CPU when null). Keys may carry the <c>bert.</c> prefix of task models;
    /// the pooler, task heads (<c>cls.</c>) and the <c>position_ids</c> buffer are ignored; anything else must match
    /// exactly (<see cref="ModelLoadException"/>).
    /// </summary>
    public static BertModel FromPretrained(string directory, Device? device = null)
    {
        var configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
        {
            throw new ModelLoadException($"{directory}: not a BERT model folder (no config.json)");
        }
        var file = SafetensorsFile.LoadFromFolder(directory, WeightFiles);
        try
        {
            return FromStateDict(BertConfig.Load(configPath), file, Path.Combine(directory, WeightFiles[0]), device);
        }
        finally
        {
            StateDictLoader.DisposeAll(file);
        }
    }

    /// <summary>
    /// Builds an encoder from <paramref name="config"/> and a transformers state dict (renamed and filtered as
    /// <see cref="FromPretrained"/> describes); <paramref name="source"/> names the weights in errors. The tensors are copied.
    /// </summary>
    public static BertModel FromStateDict(BertConfig config, IReadOnlyDictionary<string, Tensor> stateDict, string source, Device? device = null)
    {
        var renamed = new Dictionary<string, Tensor>();
        foreach (var (key, value) in stateDict)
        {
            var name = key.StartsWith("bert.", StringComparison.Ordinal) ? key["bert.".Length..] : key;
            if (name.StartsWith("pooler.", StringComparison.Ordinal) || name.StartsWith("cls.", StringComparison.Ordinal)
                || name == "embeddings.position_ids") continue;
            renamed[name] = value;
        }
        var model = new BertModel(config, initialize: false, generator: null);
        try
        {
            StateDictLoader.LoadStrict(model, renamed, source);
            if (device is not null && device.type != DeviceType.CPU) model.to(device);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Writes <c>config.json</c> and <c>model.safetensors</c> with transformers' names.</summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"),
            Config.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        SafetensorsFile.SaveAtomic(Path.Combine(directory, "model.safetensors"), state_dict());
    }

    /// <summary>The device of the weights.</summary>
    public Device Device => parameters().First().device;

    /// <summary>
    /// Hidden states [B, T, hidden_size] after the first <paramref name="numLayers"/> encoder layers (0 = the
    /// embedding layer's output; <c>num_hidden_layers</c> = the last layer, transformers' <c>last_hidden_state</c>)
    /// for token ids [B, T] (int64) and an attention mask [B, T] (1 = token, 0 = padding). Token type ids are 0.
    /// </summary>
    public Tensor Encode(Tensor inputIds, Tensor attentionMask, int numLayers)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        if (numLayers < 0 || numLayers > Config.NumHiddenLayers)
        {
            throw new ArgumentOutOfRangeException(nameof(numLayers), numLayers, $"must be in 0..{Config.NumHiddenLayers} (num_hidden_layers)");
        }
        if (inputIds.dim() != 2 || !inputIds.shape.SequenceEqual(attentionMask.shape))
        {
            throw new ArgumentException($"input ids [{string.Join(", ", inputIds.shape)}] and attention mask [{string.Join(", ", attentionMask.shape)}] must both be [batch, tokens]");
        }
        if (inputIds.shape[1] > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"{inputIds.shape[1]} tokens exceed max_position_embeddings = {Config.MaxPositionEmbeddings}");
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = Device;
        var ids = inputIds.to(ScalarType.Int64, device);
        var keep = attentionMask.to(ScalarType.Float32, device);
        var additive = ((1.0f - keep) * float.MinValue).view(keep.shape[0], 1, 1, keep.shape[1]);
        var x = embeddings.Forward(ids, zeros_like(ids));
        for (int i = 0; i < numLayers; i++)
        {
            x = encoder[i].Forward(x, additive);
        }
        return x.MoveToOuterDisposeScope();
    }

    private void Initialize(Generator? generator)
    {
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("LayerNorm.weight", StringComparison.Ordinal)) p.fill_(1.0);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else nn.init.normal_(p, 0, 0.02, generator);
        }
    }
}
