using Ddpo.Models.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Rewards.Aesthetic;

/// <summary>
/// The LAION aesthetic predictor head (improved-aesthetic-predictor's MLP, as ddpo-pytorch uses it): Linear
/// layers at <c>layers.0</c>, <c>layers.2</c>, <c>layers.4</c>, <c>layers.6</c>, <c>layers.7</c> (768 → 1024 → 128 → 64 →
/// 16 → 1 for CLIP ViT-L/14), dropouts between the first four (identity at inference) and no activations.
/// Widths are read from the weight file, so heads for other CLIP widths load too.
/// </summary>
internal sealed class AestheticHead : nn.Module
{
#pragma warning disable IDE1006 // the state-dict name
    private readonly Sequential layers;
#pragma warning restore IDE1006

    /// <summary>The Linear layers' positions in <c>layers</c> (the others are dropouts).</summary>
    public static readonly int[] LinearIndices = [0, 2, 4, 6, 7];

    /// <summary>A randomly initialised head with widths <paramref name="widths"/> (input, four hidden, output 1: six values).</summary>
    public AestheticHead(IReadOnlyList<int> widths) : base("aesthetic_head")
    {
        if (widths.Count != 6 || widths[^1] != 1 || widths.Any(w => w < 1))
        {
            throw new ArgumentException($"aesthetic head widths must be six positive numbers ending in 1, got [{string.Join(", ", widths)}]");
        }
        Widths = widths.ToArray();
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>
        {
            ("0", nn.Linear(widths[0], widths[1])),
            ("1", nn.Dropout(0.2)),
            ("2", nn.Linear(widths[1], widths[2])),
            ("3", nn.Dropout(0.2)),
            ("4", nn.Linear(widths[2], widths[3])),
            ("5", nn.Dropout(0.1)),
            ("6", nn.Linear(widths[3], widths[4])),
            ("7", nn.Linear(widths[4], widths[5])),
        };
        layers = nn.Sequential(modules);
        RegisterComponents();
        eval();
        foreach (var p in parameters()) p.requires_grad = false; // a reward: frozen
    }

    /// <summary>The widths: input (the CLIP projection size), four hidden, output 1.</summary>
    public IReadOnlyList<int> Widths { get; }

    /// <summary>The input width (CLIP embedding size).</summary>
    public int InputDim => Widths[0];

    /// <summary>
    /// Loads the head from a safetensors file with keys <c>layers.{0,2,4,6,7}.{weight,bias}</c>, or from the PyTorch
    /// file LAION publishes (<c>.pth</c>, <c>.pt</c>, <c>.bin</c>, <c>.ckpt</c>), read by <see cref="TorchCheckpoint"/>'s
    /// restricted unpickler (tensors and containers only: nothing in the file is executed).
    /// </summary>
    public static AestheticHead Load(string path, Device? device = null)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: aesthetic head file not found");
        var ext = Path.GetExtension(path).ToLowerInvariant();
        var tensors = ext is ".pth" or ".pt" or ".bin" or ".ckpt" ? TorchCheckpoint.Load(path) : SafetensorsFile.Load(path);
        try
        {
            var widths = new List<int>();
            for (int k = 0; k < LinearIndices.Length; k++)
            {
                var key = $"layers.{LinearIndices[k]}.weight";
                if (!tensors.TryGetValue(key, out var w) || w.dim() != 2)
                {
                    throw new ModelLoadException($"{path}: missing or not 2-D '{key}' (expected the LAION aesthetic head: layers.{{0,2,4,6,7}}.{{weight,bias}}; has: {string.Join(", ", tensors.Keys.Take(12))})");
                }
                if (k == 0) widths.Add((int)w.shape[1]);
                widths.Add((int)w.shape[0]);
            }
            var head = new AestheticHead(widths);
            try
            {
                StateDictLoader.LoadStrict(head, tensors, path);
                if (device is not null && device.type != DeviceType.CPU) head.to(device);
                return head;
            }
            catch
            {
                head.Dispose();
                throw;
            }
        }
        finally
        {
            StateDictLoader.DisposeAll(tensors);
        }
    }

    /// <summary>
    /// Scores [B] of embeddings [B, <see cref="InputDim"/>] (already L2-normalised by the caller); differentiable in the
    /// embeddings (the head's weights are frozen).
    /// </summary>
    public Tensor Forward(Tensor embeddings)
    {
        using var scope = NewDisposeScope();
        var w = parameters().First();
        return layers.forward(embeddings.to(w.dtype, w.device)).squeeze(1).MoveToOuterDisposeScope();
    }
}
