using Ddpo.Models.Unet;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>Classifier-free guided prediction of a UNet, shared by sampling and DDPO training.</summary>
internal static class GuidedNoisePredictor
{
    /// <summary>
    /// eps_neg + g (eps_pos - eps_neg), running both halves as one batch [negative; positive] in
    /// <paramref name="dtype"/>. With <paramref name="negativeEmbeds"/> null only the conditional
    /// pass runs. The result is float32 (float64 for a float64 model); gradients flow when enabled.
    /// </summary>
    public static Tensor Predict(UNet2DConditionModel unet, Tensor latents, Tensor timestep, Tensor promptEmbeds,
        Tensor? negativeEmbeds, double guidanceScale, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var outType = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var x = latents.to(dtype);
        Tensor eps;
        if (negativeEmbeds is null)
        {
            eps = unet.forward(x, timestep, promptEmbeds.to(dtype)).to(outType);
        }
        else
        {
            var t = timestep.dim() == 0 ? timestep : cat([timestep, timestep]);
            var both = unet.forward(cat([x, x]), t, cat([negativeEmbeds, promptEmbeds]).to(dtype)).to(outType);
            var halves = both.chunk(2);
            eps = halves[0] + guidanceScale * (halves[1] - halves[0]);
        }
        return eps.MoveToOuterDisposeScope();
    }
}
