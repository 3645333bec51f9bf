using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// What DDPO trains: LoRA adapters on the UNet's attention projections (the base weights frozen,
/// possibly in fp16/bf16) or the whole UNet (fp32). Trainable parameters are always float32.
/// </summary>
internal sealed class TrainableWeights
{
    private readonly UNet2DConditionModel _unet;

    /// <summary>The LoRA adapters, or null when the full UNet is trained.</summary>
    public LoraAdapters? Lora { get; }

    /// <summary>The parameters given to the optimizer.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    private TrainableWeights(UNet2DConditionModel unet, LoraAdapters? lora, IReadOnlyList<Parameter> parameters)
    {
        _unet = unet;
        Lora = lora;
        Parameters = parameters;
    }

    /// <summary>Attaches LoRA (rank, alpha, down drawn as <paramref name="init"/> from the seed; up-projections zero) and freezes the base UNet.</summary>
    public static TrainableWeights WithLora(UNet2DConditionModel unet, int rank, double alpha, long seed, LoraInit init = LoraInit.Gaussian)
    {
        foreach (var p in unet.parameters()) p.requires_grad = false;
        var lora = LoraAdapters.Attach(unet, rank, alpha, gen: new Generator((ulong)seed), init: init);
        return new TrainableWeights(unet, lora, lora.Parameters);
    }

    /// <summary>Makes every UNet parameter trainable (the UNet must be float32).</summary>
    public static TrainableWeights FullUnet(UNet2DConditionModel unet)
    {
        var ps = unet.parameters().ToList();
        if (ps.Any(p => p.dtype != ScalarType.Float32))
        {
            throw new ConfigException("use_lora = false trains the whole UNet, which needs float32 weights: set pretrained.dtype = \"fp32\"");
        }
        foreach (var p in ps) p.requires_grad = true;
        return new TrainableWeights(unet, null, ps);
    }

    /// <summary>
    /// The trainable tensors exactly as the optimizer sees them, keyed by position (<c>param.0000</c>, ...),
    /// for checkpoints that resume bit-for-bit.
    /// </summary>
    public Dictionary<string, Tensor> RawState() =>
        Parameters.Select((p, i) => (Key: $"param.{i:D4}", Value: (Tensor)p)).ToDictionary(x => x.Key, x => x.Value);

    /// <summary>Restores tensors saved by <see cref="RawState"/>; a missing or mis-shaped tensor is an error naming <paramref name="source"/>.</summary>
    public void LoadRawState(IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        using var _ = no_grad();
        for (int i = 0; i < Parameters.Count; i++)
        {
            var key = $"param.{i:D4}";
            if (!tensors.TryGetValue(key, out var value))
            {
                throw new ModelLoadException($"{source}: checkpoint lacks trainable tensor '{key}' ({Parameters.Count} expected)");
            }
            if (!value.shape.SequenceEqual(Parameters[i].shape))
            {
                throw new ModelLoadException($"{source}: tensor '{key}' has shape [{string.Join(", ", value.shape)}], expected [{string.Join(", ", Parameters[i].shape)}] (was the checkpoint made with other LoRA settings?)");
            }
            Parameters[i].copy_(value);
        }
    }

    /// <summary>The file name <see cref="Export"/> output gets in run and checkpoint folders.</summary>
    public string ExportFileName => Lora is not null ? "lora.safetensors" : "unet.safetensors";

    /// <summary>
    /// Writes the fine-tuned weights for other tools: LoRA in diffusers naming (loadable by
    /// <c>pipe.load_lora_weights</c> and <c>ddpo sample --lora</c>), or the full UNet state dict.
    /// </summary>
    public void Export(string path)
    {
        if (Lora is not null)
        {
            Lora.Save(path);
        }
        else
        {
            SafetensorsFile.SaveAtomic(path, _unet.state_dict());
        }
    }
}
