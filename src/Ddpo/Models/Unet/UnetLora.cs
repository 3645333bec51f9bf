using Ddpo.Models.Lora;

namespace Ddpo.Models.Unet;

/// <summary>
/// LoRA adapters seen from the UNet side: <see cref="LoraAdapters"/> only needs a module to walk
/// (<c>named_modules()</c>), so it does not know the UNet type; this gives the adapted UNet back.
/// </summary>
internal static class UnetLora
{
    extension(LoraAdapters lora)
    {
        /// <summary>The UNet the adapters are attached to.</summary>
        public UNet2DConditionModel Unet => lora.Model as UNet2DConditionModel
            ?? throw new InvalidOperationException($"these LoRA adapters are attached to a {lora.Model.GetType().Name}, not a UNet");
    }
}
