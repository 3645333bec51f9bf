namespace Ddpo.Models.Lora;

/// <summary>
/// How a fresh adapter's down projection [rank, in_features] is drawn; the up projection always starts at
/// zero, so a fresh adapter leaves the UNet's output unchanged and only the learning dynamics differ.
/// </summary>
public enum LoraInit
{
    /// <summary>
    /// N(0, (1/rank)^2): diffusers 0.17's <c>LoRALinearLayer</c> (<c>nn.init.normal_(down.weight, std=1 / rank)</c>),
    /// which ddpo-pytorch trains; PEFT calls it <c>init_lora_weights="gaussian"</c>. The default.
    /// </summary>
    Gaussian,

    /// <summary>
    /// U(-1/sqrt(in_features), 1/sqrt(in_features)), i.e. Kaiming-uniform with a = sqrt(5): PEFT's default
    /// (<c>init_lora_weights=True</c>). For Stable Diffusion's widths (320-1280) it is 8 to 16 times smaller than
    /// the Gaussian at rank 4, so learning starts slower at the same learning rate.
    /// </summary>
    KaimingUniform,
}

/// <summary>Config names of <see cref="LoraInit"/> (<c>lora.init</c>).</summary>
internal static class LoraInits
{
    /// <summary>The accepted names, in the order they are listed in errors.</summary>
    public static readonly IReadOnlyList<string> Names = ["gaussian", "kaiming_uniform"];

    /// <summary>Parses a config name; null when unknown.</summary>
    public static LoraInit? TryParse(string name) => name switch
    {
        "gaussian" => LoraInit.Gaussian,
        "kaiming_uniform" => LoraInit.KaimingUniform,
        _ => null,
    };

    /// <summary>The config name of <paramref name="init"/>.</summary>
    public static string ToConfigName(this LoraInit init) => init == LoraInit.Gaussian ? "gaussian" : "kaiming_uniform";
}
