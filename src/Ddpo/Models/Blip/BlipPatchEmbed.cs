using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Blip;

/// <summary>timm <c>PatchEmbed</c>: a stride-<c>patch</c> convolution (with bias), flattened to [B, patches, width].</summary>
internal sealed class BlipPatchEmbed : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly Conv2d proj;
#pragma warning restore IDE1006

    public BlipPatchEmbed(BlipVisionConfig c, Device? device = null) : base("patch_embed")
    {
        proj = nn.Conv2d(3, c.Width, c.PatchSize, stride: c.PatchSize, device: device);
        RegisterComponents();
    }

    /// <summary>The convolution weight (its device and dtype are the model's).</summary>
    public Tensor Weight => proj.weight!;

    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return SafeConv.Call(proj, pixels).flatten(2).transpose(1, 2).MoveToOuterDisposeScope();
    }
}
