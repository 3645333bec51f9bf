using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Blip;

/// <summary>
/// med.py <c>BertLayer</c> in its default <c>mode='multimodal'</c> (what ImageReward calls): self-attention over the
/// text, cross-attention to the image tokens, then the feed-forward block.
/// </summary>
internal sealed class MedLayer : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly MedAttention attention;
    private readonly MedAttention crossattention;
    private readonly MedIntermediate intermediate;
    private readonly MedOutput output;
#pragma warning restore IDE1006

    public MedLayer(MedConfig c, int encoderWidth, Device? device = null) : base("layer")
    {
        attention = new MedAttention(c, c.HiddenSize, "attention", device);
        crossattention = new MedAttention(c, encoderWidth, "crossattention", device);
        intermediate = new MedIntermediate(c, device);
        output = new MedOutput(c.IntermediateSize, c, device);
        RegisterComponents();
    }

    /// <summary>One layer: <paramref name="textMask"/> is the additive padding mask of the text; the image tokens are never masked.</summary>
    public Tensor Forward(Tensor x, Tensor textMask, Tensor image)
    {
        using var scope = NewDisposeScope();
        var a = attention.Forward(x, x, textMask);
        var c = crossattention.Forward(a, image, null);
        return output.Forward(intermediate.Forward(c), c).MoveToOuterDisposeScope();
    }
}
