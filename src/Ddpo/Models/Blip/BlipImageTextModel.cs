using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Blip;

/// <summary>
/// The parts of BLIP's <c>BLIP_Pretrain</c> that ImageReward keeps (module <c>blip</c>): <c>visual_encoder</c>,
/// <c>text_encoder</c> (its cross-attention width is the ViT's, as <c>BLIP_Pretrain.__init__</c> sets it), and the
/// contrastive projections <c>vision_proj</c> / <c>text_proj</c>, which the checkpoints hold but the score does not use.
/// </summary>
internal sealed class BlipImageTextModel : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly BlipVisionTransformer visual_encoder;
    private readonly MedTextEncoder text_encoder;
    private readonly Linear vision_proj;
    private readonly Linear text_proj;
#pragma warning restore IDE1006

    public BlipImageTextModel(BlipVisionConfig vision, MedConfig text, int embedDim, Device? device = null) : base("blip")
    {
        visual_encoder = new BlipVisionTransformer(vision, device);
        text_encoder = new MedTextEncoder(text, vision.Width, device);
        vision_proj = nn.Linear(vision.Width, embedDim, device: device);
        text_proj = nn.Linear(text.HiddenSize, embedDim, device: device);
        RegisterComponents();
    }

    /// <summary>The image encoder.</summary>
    public BlipVisionTransformer VisualEncoder => visual_encoder;

    /// <summary>The text encoder.</summary>
    public MedTextEncoder TextEncoder => text_encoder;
}
