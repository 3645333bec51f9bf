using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>transformers' <c>CLIPEncoder</c>: a stack of <see cref="ClipEncoderLayer"/>s under <c>layers.N</c>.</summary>
internal sealed class ClipEncoder : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly ModuleList<ClipEncoderLayer> layers;
#pragma warning restore IDE1006

    public ClipEncoder(int numLayers, int hidden, int intermediate, int heads, string activation, double eps, bool causal, Device? device = null)
        : base("encoder")
    {
        layers = new ModuleList<ClipEncoderLayer>();
        for (int i = 0; i < numLayers; i++)
        {
            layers.Add(new ClipEncoderLayer(hidden, intermediate, heads, activation, eps, causal, device));
        }
        RegisterComponents();
    }

    public void Initialize(Generator? generator)
    {
        foreach (var layer in layers) layer.Initialize(layers.Count, generator);
    }

    /// <summary>
    /// Runs the stack and also returns the input of the last layer (transformers' <c>hidden_states[-2]</c>,
    /// which SDXL and SD3 use); the caller owns both tensors (the penultimate one is <paramref name="x"/> itself
    /// when there is a single layer).
    /// </summary>
    public (Tensor Last, Tensor Penultimate) ForwardWithPenultimate(Tensor x)
    {
        var h = x;
        Tensor penultimate = x;
        for (int i = 0; i < layers.Count; i++)
        {
            var next = layers[i].forward(h);
            if (i == layers.Count - 1) penultimate = h;
            else if (!ReferenceEquals(h, x)) h.Dispose();
            h = next;
        }
        return (h, penultimate);
    }

    public override Tensor forward(Tensor x)
    {
        var h = x;
        foreach (var layer in layers)
        {
            var next = layer.forward(h);
            if (!ReferenceEquals(h, x)) h.Dispose();
            h = next;
        }
        return h;
    }
}
