using System.Text.Json;
using Ddpo.Models.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.T5;

/// <summary>
/// transformers' <c>T5EncoderModel</c> (SD3's <c>text_encoder_3</c>, FLUX's <c>text_encoder_2</c>: T5 v1.1 XXL).
/// State-dict names are transformers': <c>shared.weight</c>, its alias <c>encoder.embed_tokens.weight</c> (the same
/// embedding), <c>encoder.block.N.layer.{0,1}.…</c>, <c>encoder.final_layer_norm.weight</c>. Dropout is not applied
/// (the encoder is used frozen, in eval mode).
/// </summary>
internal sealed class T5EncoderModel : nn.Module
{
    /// <summary>The tied embedding's two names: files keep the first (transformers' <c>save_pretrained</c>).</summary>
    public const string SharedKey = "shared.weight", EmbedTokensKey = "encoder.embed_tokens.weight";

#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly Embedding shared;
    private readonly T5Stack encoder;
#pragma warning restore IDE1006

    /// <summary>Creates a randomly initialised model (transformers' initialisation; norms at 1).</summary>
    public T5EncoderModel(T5Config config, Generator? generator = null) : this(config, device: null, initialize: true, generator) { }

    /// <summary>Builds the model on <paramref name="device"/> (e.g. meta, for shapes), randomly initialised or not.</summary>
    internal T5EncoderModel(T5Config config, Device? device, bool initialize, Generator? generator) : base("t5_encoder")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        shared = nn.Embedding(config.VocabSize, config.DModel, device: device);
        encoder = new T5Stack(config, shared, device);
        RegisterComponents();
        if (initialize)
        {
            using (no_grad()) nn.init.normal_(shared.weight!, 0, config.InitializerFactor, generator);
            encoder.Initialize(config.InitializerFactor, generator);
        }
    }

    /// <summary>The model's configuration.</summary>
    public T5Config Config { get; }

    /// <summary>
    /// Loads a transformers <c>T5EncoderModel</c> folder (<c>config.json</c>, <c>model.safetensors</c> or
    /// <c>model.fp16.safetensors</c>, possibly sharded) strictly, converted to <paramref name="dtype"/> on
    /// <paramref name="device"/>, in eval mode. The embedding may be stored as <c>shared.weight</c>,
    /// <c>encoder.embed_tokens.weight</c> or both (then they must be equal).
    /// </summary>
    public static T5EncoderModel FromPretrained(string directory, ScalarType dtype, Device device)
    {
        if (!Directory.Exists(directory)) throw new ModelLoadException($"{directory}: model folder not found");
        var config = T5Config.Load(Path.Combine(directory, "config.json"));
        var model = new T5EncoderModel(config, device: null, initialize: false, generator: null);
        try
        {
            string[] candidates = ["model.safetensors", "model.fp16.safetensors"];
            var file = SafetensorsFile.LoadFromFolder(directory, candidates);
            try
            {
                var source = candidates.Select(c => Path.Combine(directory, c))
                    .FirstOrDefault(p => File.Exists(p) || File.Exists(p + ".index.json")) ?? directory;
                StateDictLoader.LoadStrict(model, WithBothEmbeddingNames(file, source), source);
            }
            finally
            {
                StateDictLoader.DisposeAll(file);
            }
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
    /// The last hidden state [B, S, d_model] of token ids [B, S]. <paramref name="attentionMask"/> [B, S] (1 = attend,
    /// 0 = padding; SD3 and FLUX pass none) adds the dtype's minimum to the masked keys, as transformers does.
    /// </summary>
    public Tensor forward(Tensor inputIds, Tensor? attentionMask = null)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.dim() != 2 || !torch.is_integral(inputIds.dtype) || inputIds.shape[1] == 0)
        {
            throw new ArgumentException($"input ids must be a non-empty integer tensor [batch, sequence], got {inputIds.dtype} [{string.Join(", ", inputIds.shape)}]", nameof(inputIds));
        }
        if (attentionMask is not null && !attentionMask.shape.SequenceEqual(inputIds.shape))
        {
            throw new ArgumentException($"attention mask [{string.Join(", ", attentionMask.shape)}] does not match the input ids [{string.Join(", ", inputIds.shape)}]", nameof(attentionMask));
        }
        using var scope = NewDisposeScope();
        var ids = inputIds.to(ScalarType.Int64, shared.weight!.device);
        long lo = ids.min().item<long>(), hi = ids.max().item<long>();
        if (lo < 0 || hi >= Config.VocabSize)
        {
            throw new ArgumentException($"token ids must lie in 0..{Config.VocabSize - 1} (vocab_size), got {lo}..{hi}", nameof(inputIds));
        }
        return encoder.forward(ids, attentionMask).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Writes <c>config.json</c> and <c>model.safetensors</c> (as stored) with transformers' names, keeping only
    /// <c>shared.weight</c> of the tied pair, as transformers' <c>save_pretrained</c> does.
    /// </summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"),
            Config.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var tensors = state_dict().Where(kv => kv.Key != EmbedTokensKey).ToDictionary(kv => kv.Key, kv => kv.Value);
        SafetensorsFile.SaveAtomic(Path.Combine(directory, "model.safetensors"), tensors);
    }

    /// <summary>Gives the tied embedding under both of its names (the module's state dict has both).</summary>
    private static Dictionary<string, Tensor> WithBothEmbeddingNames(IReadOnlyDictionary<string, Tensor> file, string source)
    {
        var result = new Dictionary<string, Tensor>(file);
        bool hasShared = file.TryGetValue(SharedKey, out var s), hasEmbed = file.TryGetValue(EmbedTokensKey, out var e);
        if (hasShared && hasEmbed)
        {
            if (!s!.shape.SequenceEqual(e!.shape) || !s.equal(e.to(s.dtype)).all().item<bool>())
            {
                throw new ModelLoadException($"{source}: '{SharedKey}' and '{EmbedTokensKey}' are tied in T5 but differ in the file");
            }
        }
        else if (hasShared)
        {
            result[EmbedTokensKey] = s!;
        }
        else if (hasEmbed)
        {
            result[SharedKey] = e!;
        }
        return result;
    }
}
