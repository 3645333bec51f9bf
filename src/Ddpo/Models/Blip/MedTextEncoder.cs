using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Blip;

/// <summary><c>encoder</c>: the stack of <see cref="MedLayer"/> at <c>encoder.layer.N</c>.</summary>
internal sealed class MedEncoder : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly ModuleList<MedLayer> layer;
#pragma warning restore IDE1006

    public MedEncoder(MedConfig c, int encoderWidth, Device? device = null) : base("encoder")
    {
        layer = new ModuleList<MedLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new MedLayer(c, encoderWidth, device)).ToArray());
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor textMask, Tensor image)
    {
        using var scope = NewDisposeScope();
        foreach (var l in layer) x = l.Forward(x, textMask, image);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// BLIP's text encoder (med.py <c>BertModel(config, add_pooling_layer=False)</c>) as ImageReward calls it:
/// <c>text_encoder(ids, attention_mask, encoder_hidden_states=image_embeds, encoder_attention_mask=ones)</c>, giving
/// <c>last_hidden_state</c>. Padded text keys get −10000 added to their scores (med.py's
/// <c>get_extended_attention_mask</c>, not −inf); the image tokens are all attended.
/// </summary>
internal sealed class MedTextEncoder : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly MedEmbeddings embeddings;
    private readonly MedEncoder encoder;
#pragma warning restore IDE1006

    /// <summary>Builds the encoder; <paramref name="encoderWidth"/> is the width of the image tokens (the ViT's).</summary>
    public MedTextEncoder(MedConfig c, int encoderWidth, Device? device = null) : base("text_encoder")
    {
        c.Validate();
        Config = c;
        EncoderWidth = encoderWidth;
        embeddings = new MedEmbeddings(c, device);
        encoder = new MedEncoder(c, encoderWidth, device);
        RegisterComponents();
    }

    /// <summary>The sizes.</summary>
    public MedConfig Config { get; }

    /// <summary>The width of the image tokens.</summary>
    public int EncoderWidth { get; }

    /// <summary>
    /// <c>last_hidden_state</c> [B, T, hidden] of ids [B, T] with attention mask [B, T] (1 = token, 0 = padding)
    /// cross-attending to <paramref name="imageEmbeds"/> [B, S, encoder width].
    /// </summary>
    public Tensor Forward(Tensor inputIds, Tensor attentionMask, Tensor imageEmbeds)
    {
        if (inputIds.dim() != 2 || !inputIds.shape.SequenceEqual(attentionMask.shape))
        {
            throw new ArgumentException($"input ids [{string.Join(", ", inputIds.shape)}] and attention mask [{string.Join(", ", attentionMask.shape)}] must be the same [batch, length]");
        }
        if (imageEmbeds.dim() != 3 || imageEmbeds.shape[0] != inputIds.shape[0] || imageEmbeds.shape[2] != EncoderWidth)
        {
            throw new ArgumentException($"image embeds must be [{inputIds.shape[0]}, tokens, {EncoderWidth}], got [{string.Join(", ", imageEmbeds.shape)}]");
        }
        using var scope = NewDisposeScope();
        var x = embeddings.Forward(inputIds);
        var mask = ((1.0 - attentionMask.to(x.dtype)) * -10000.0).view(attentionMask.shape[0], 1, 1, attentionMask.shape[1]);
        return encoder.Forward(x, mask, imageEmbeds.to(x.dtype)).MoveToOuterDisposeScope();
    }
}
