using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Clip;

/// <summary>Validation shared by the CLIP text and vision configs.</summary>
internal static class ClipConfigChecks
{
    public static void Positive(string source, params (string Field, int Value)[] fields)
    {
        foreach (var (field, value) in fields)
        {
            if (value <= 0) throw new ConfigException($"{source}: field '{field}' = {value}, expected a positive integer");
        }
    }

    public static void HeadsDivide(string source, int hidden, int heads)
    {
        if (hidden % heads != 0)
        {
            throw new ConfigException($"{source}: field 'hidden_size' = {hidden} is not divisible by 'num_attention_heads' = {heads}");
        }
    }

    public static void Activation(string source, string act)
    {
        if (!ClipActivation.Supported.Contains(act))
        {
            throw new ConfigException($"{source}: field 'hidden_act' = \"{act}\" is not supported (expected one of: {string.Join(", ", ClipActivation.Supported)})");
        }
    }
}
