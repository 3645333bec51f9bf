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

    /// <summary>The file key diffusers' <c>save_lora_weights</c> uses for a module's down or up weight.</summary>
    public static string DiffusersKey(string modulePath, LoraTensorKind kind) =>
        $"unet.{modulePath}.lora.{(kind == LoraTensorKind.Down ? "down" : "up")}.weight";

    /// <summary>Splits a file key into the UNet module path and the tensor kind; false when the key is not a LoRA key.</summary>
    public static bool TryParse(string key, out string modulePath, out LoraTensorKind kind)
    {
        modulePath = "";
        kind = default;
        var rest = key;
        foreach (var prefix in new[] { "unet.", "base_model.model." })
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
