using Ddpo.Tokenizers;
using static TorchSharp.torch;

namespace Ddpo.Rewards.Learned;

/// <summary>Token ids of the prompts as transformers' <c>CLIPProcessor(text=…, truncation=True, max_length=77)</c> pads them.</summary>
internal static class ClipRewardText
{
    /// <summary>
    /// int64 [B, L] on the CPU: each prompt is bos + BPE + eos, cut to <paramref name="maxLength"/> (the last id kept
    /// is eos), then padded with the tokenizer's pad id to <paramref name="maxLength"/> (<c>padding="max_length"</c>,
    /// CLIPScore) or to the longest prompt (<c>padding=True</c>, PickScore).
    /// </summary>
    public static Tensor Ids(ClipTokenizer tokenizer, IReadOnlyList<string> prompts, bool padToMaxLength, int maxLength = ClipTokenizer.DefaultMaxLength)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0) throw new ArgumentException("no prompts", nameof(prompts));
        var encoded = prompts.Select(p => tokenizer.Encode(p)).ToList();
        int length = padToMaxLength ? maxLength : Math.Min(maxLength, encoded.Max(e => e.Count));
        var data = new long[prompts.Count * length];
        for (int b = 0; b < encoded.Count; b++)
        {
            var row = data.AsSpan(b * length, length);
            row.Fill(tokenizer.PadTokenId);
            var ids = encoded[b];
            for (int i = 0; i < Math.Min(ids.Count, length); i++) row[i] = ids[i];
            if (ids.Count > length) row[length - 1] = tokenizer.EosTokenId;
        }
        return tensor(data, [prompts.Count, length], ScalarType.Int64);
    }
}
