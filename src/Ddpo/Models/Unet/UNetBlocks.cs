using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Unet;

/// <summary>A UNet down block: returns the new hidden state and appends its skip outputs to <c>skips</c>.</summary>
internal abstract class UNetDownBlock : nn.Module
{
    /// <summary>Names the module.</summary>
    protected UNetDownBlock(string name) : base(name) { }

    /// <summary>Applies the block.</summary>
    public abstract Tensor Forward(Tensor hidden, Tensor temb, Tensor context, List<Tensor> skips);
}

/// <summary>A UNet up block: consumes skip outputs from the end of <c>skips</c>.</summary>
internal abstract class UNetUpBlock : nn.Module
{
    /// <summary>Names the module.</summary>
    protected UNetUpBlock(string name) : base(name) { }

    /// <summary>Number of ResNets (= skip tensors consumed).</summary>
    public abstract int ResnetCount { get; }

    /// <summary>Whether the block ends with an up-sampler.</summary>
    public abstract bool HasUpsampler { get; }

    /// <summary>Applies the block; <paramref name="upsampleSize"/> forces the up-sampler's output size.</summary>
    public abstract Tensor Forward(Tensor hidden, List<Tensor> skips, Tensor temb, Tensor context, long[]? upsampleSize);

    /// <summary>Removes and returns the last skip tensor.</summary>
    protected static Tensor Pop(List<Tensor> skips)
    {
        var last = skips[^1];
        skips.RemoveAt(skips.Count - 1);
        return last;
    }
}
