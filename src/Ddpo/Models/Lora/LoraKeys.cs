namespace Ddpo.Models.Lora;

/// <summary>What a LoRA file entry holds.</summary>
internal enum LoraTensorKind
{
    /// <summary>The down (A) projection [rank, in].</summary>
    Down,

    /// <summary>The up (B) projection [out, rank].</summary>
    Up,

    /// <summary>The scalar alpha (scale = alpha / rank).</summary>
    Alpha,
}

/// <summary>
/// Maps LoRA file keys to UNet module paths. Accepted spellings (optionally prefixed by <c>unet.</c> and/or
/// PEFT's <c>base_model.model.</c>): diffusers <c>&lt;path&gt;.lora.down.weight</c> / <c>.lora.up.weight</c>,
/// PEFT <c>&lt;path&gt;.lora_A.weight</c> / <c>.lora_B.weight</c> / <c>.alpha</c>, and the old attention-processor
/// form <c>&lt;attn&gt;.processor.to_q_lora.down.weight</c> (to_q, to_k, to_v, to_out).
/// </summary>
internal static class LoraKeys
{
    private static readonly (string Suffix, LoraTensorKind Kind)[] Suffixes =
    [
        (".lora.down.weight", LoraTensorKind.Down),
        (".lora.up.weight", LoraTensorKind.Up),
        (".lora_A.weight", LoraTensorKind.Down),
        (".lora_B.weight", LoraTensorKind.Up),
        (".lora_A.default.weight", LoraTensorKind.Down),
        (".lora_B.default.weight", LoraTensorKind.Up),
        (".alpha", LoraTensorKind.Alpha),
    ];

    private static readonly (string Old, string New)[] ProcessorNames =
    [
        (".processor.to_q_lora", ".to_q"),
        (".processor.to_k_lora", ".to_k"),
        (".processor.to_v_lora", ".to_v"),
        (".processor.to_out_lora", ".to_out.0"),
    ];

    /// <summary>The denoiser component of Stable Diffusion 1.x/2.x pipelines (the default).</summary>
    public const string Unet = "unet";

    /// <summary>
    /// The file key diffusers' <c>save_lora_weights</c> uses for a module's down or up weight: for the UNet
    /// <c>unet.&lt;path&gt;.lora.down.weight</c> (what diffusers' SD 1/2 loader has always read); for a transformer
    /// (SD3, FLUX) PEFT's <c>transformer.&lt;path&gt;.lora_A.weight</c> / <c>.lora_B.weight</c>, the keys
    /// <c>StableDiffusion3Pipeline.save_lora_weights</c> writes and <c>load_lora_weights</c> expects.
    /// </summary>
    public static string DiffusersKey(string modulePath, LoraTensorKind kind, string component = Unet) => component == Unet
        ? $"unet.{modulePath}.lora.{(kind == LoraTensorKind.Down ? "down" : "up")}.weight"
        : $"{component}.{modulePath}.lora_{(kind == LoraTensorKind.Down ? "A" : "B")}.weight";

    /// <summary>
    /// Splits a file key into the module path within <paramref name="component"/> (<c>unet</c>, <c>transformer</c>:
    /// its prefix is optional) and the tensor kind; false when the key is not a LoRA key.
    /// </summary>
    public static bool TryParse(string key, out string modulePath, out LoraTensorKind kind, string component = Unet)
    {
        modulePath = "";
        kind = default;
        var rest = key;
        foreach (var prefix in new[] { component + ".", "base_model.model." })
        {
            if (rest.StartsWith(prefix, StringComparison.Ordinal)) rest = rest[prefix.Length..];
        }
        foreach (var (suffix, k) in Suffixes)
        {
            if (rest.EndsWith(suffix, StringComparison.Ordinal) && rest.Length > suffix.Length)
            {
                modulePath = rest[..^suffix.Length];
                kind = k;
                foreach (var (oldName, newName) in ProcessorNames)
                {
                    if (modulePath.EndsWith(oldName, StringComparison.Ordinal))
                    {
                        modulePath = modulePath[..^oldName.Length] + newName;
                    }
                }
                return true;
            }
        }
        // Old attention-processor spelling: <attn>.processor.to_q_lora.down.weight
        foreach (var (oldName, newName) in ProcessorNames)
        {
            foreach (var (part, k) in new[] { (".down.weight", LoraTensorKind.Down), (".up.weight", LoraTensorKind.Up) })
            {
                var suffix = oldName + part;
                if (rest.EndsWith(suffix, StringComparison.Ordinal) && rest.Length > suffix.Length)
                {
                    modulePath = rest[..^suffix.Length] + newName;
                    kind = k;
                    return true;
                }
            }
        }
        return false;
    }
}
