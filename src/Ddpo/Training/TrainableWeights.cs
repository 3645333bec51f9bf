using Ddpo.Config;
using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Policies;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// What DDPO trains: LoRA adapters on the denoiser's attention projections (the base weights frozen,
/// possibly in fp16/bf16) or the whole denoiser (fp32). Trainable parameters are always float32.
/// </summary>
internal sealed class TrainableWeights
{
    private readonly nn.Module _denoiser;
    private readonly string _denoiserName;

    /// <summary>The LoRA adapters, or null when the full UNet is trained.</summary>
    public LoraAdapters? Lora { get; }

    /// <summary>The parameters given to the optimizer.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    private TrainableWeights(nn.Module denoiser, string denoiserName, LoraAdapters? lora, IReadOnlyList<Parameter> parameters)
    {
        _denoiser = denoiser;
        _denoiserName = denoiserName;
        Lora = lora;
        Parameters = parameters;
    }

    /// <summary>What a run trains on <paramref name="policy"/>: LoRA (<c>use_lora</c>, the <c>[lora]</c> settings, drawn from the seed) or the whole denoiser.</summary>
    public static TrainableWeights For(DdpoConfig config, IDiffusionPolicy policy) => config.UseLora
        ? WithLora(policy.Denoiser, config.Lora.Rank, config.Lora.Alpha, config.Seed, config.Lora.Init, policy.LoraTargets, policy.DenoiserName)
        : Full(policy.Denoiser, policy.DenoiserName);

    /// <summary>
    /// Attaches LoRA to the linear layers of <paramref name="denoiser"/> named by <paramref name="targets"/> (default:
    /// the attention projections; rank, alpha, down drawn as <paramref name="init"/> from the seed; up-projections zero)
    /// and freezes the base weights.
    /// </summary>
    public static TrainableWeights WithLora(nn.Module denoiser, int rank, double alpha, long seed, LoraInit init = LoraInit.Gaussian,
        IReadOnlyList<string>? targets = null, string denoiserName = "unet")
    {
        foreach (var p in denoiser.parameters()) p.requires_grad = false;
        var lora = LoraAdapters.Attach(denoiser, rank, alpha, targets, new Generator((ulong)seed), init, denoiserName);
        return new TrainableWeights(denoiser, denoiserName, lora, lora.Parameters);
    }

    /// <summary>Makes every parameter of <paramref name="denoiser"/> trainable (it must be float32).</summary>
    public static TrainableWeights Full(nn.Module denoiser, string denoiserName = "unet")
    {
        var ps = denoiser.parameters().ToList();
        if (ps.Any(p => p.dtype != ScalarType.Float32))
        {
            throw new ConfigException($"use_lora = false trains the whole {(denoiserName == "unet" ? "UNet" : denoiserName)}, which needs float32 weights: set pretrained.dtype = \"fp32\"");
        }
        foreach (var p in ps) p.requires_grad = true;
        return new TrainableWeights(denoiser, denoiserName, null, ps);
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
    public string ExportFileName => Lora is not null ? "lora.safetensors" : $"{_denoiserName}.safetensors";

    /// <summary>
    /// Writes the fine-tuned weights for other tools: LoRA in diffusers naming (loadable by
    /// <c>pipe.load_lora_weights</c> and <c>ddpo sample --lora</c>), or the full denoiser's state dict.
    /// </summary>
    public void Export(string path)
    {
        if (Lora is not null)
        {
            Lora.Save(path);
        }
        else
        {
            SafetensorsFile.SaveAtomic(path, _denoiser.state_dict());
        }
    }
}
