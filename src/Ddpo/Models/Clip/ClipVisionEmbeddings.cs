using Ddpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPVisionEmbeddings</c>: a class token followed by non-overlapping patch
/// embeddings (bias-free convolution), plus learned position embeddings (ids made on the fly).
/// </summary>
internal sealed class ClipVisionEmbeddings : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly Parameter class_embedding;
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;
#pragma warning restore IDE1006

    public ClipVisionEmbeddings(ClipVisionConfig config, Device? device = null) : base("embeddings")
    {
        class_embedding = new Parameter(empty(config.HiddenSize, device: device));
        patch_embedding = nn.Conv2d(config.NumChannels, config.HiddenSize, config.PatchSize, stride: config.PatchSize, bias: false, device: device);
        position_embedding = nn.Embedding(config.NumPositions, config.HiddenSize, device: device);
        RegisterComponents();
    }

    /// <summary>The patch-embedding weight (its device and dtype are the model's).</summary>
    public Tensor PatchWeight => patch_embedding.weight!;

    public void Initialize(Generator? generator)
    {
        ClipInit.Normal(class_embedding, Math.Pow(class_embedding.shape[0], -0.5), generator);
        ClipInit.Normal(patch_embedding.weight!, 0.02, generator);
        ClipInit.Normal(position_embedding.weight!, 0.02, generator);
    }

    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        long b = pixels.shape[0];
        var patches = SafeConv.Call(patch_embedding, pixels).flatten(2).transpose(1, 2);
        var cls = class_embedding.view(1, 1, -1).expand(b, 1, -1);
        var tokens = cat([cls, patches], 1);
        var positions = arange(tokens.shape[1], dtype: ScalarType.Int64, device: pixels.device).unsqueeze(0);
        return (tokens + position_embedding.forward(positions)).MoveToOuterDisposeScope();
    }
}
