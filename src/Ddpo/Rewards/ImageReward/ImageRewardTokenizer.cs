using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards.ImageReward;

/// <summary>
/// BLIP's tokenizer as ImageReward calls it: <c>bert-base-uncased</c> WordPiece (lower-cased, basic tokenization) with BLIP's
/// added <c>[DEC]</c> / <c>[ENC]</c> (ids after the vocabulary; no prompt produces them), and
/// <c>tokenizer(prompt, padding='max_length', truncation=True, max_length=35)</c>: <c>[CLS] … [SEP]</c> then <c>[PAD]</c>.
/// </summary>
internal sealed class ImageRewardTokenizer
{
    private readonly BertWordPieceTokenizer _wordPiece;

    private ImageRewardTokenizer(BertWordPieceTokenizer wordPiece) => _wordPiece = wordPiece;

    /// <summary>The padded length.</summary>
    public int MaxLength => _wordPiece.MaxLength;

    /// <summary>Reads <c>vocab.txt</c> (and <c>tokenizer_config.json</c> when present) from <paramref name="directory"/>.</summary>
    public static ImageRewardTokenizer FromFolder(string directory, int maxLength = 35) =>
        new(BertWordPieceTokenizer.FromFolder(directory, maxLength));

    /// <summary>Ids and attention mask [B, <see cref="MaxLength"/>] (int64) of <paramref name="prompts"/>.</summary>
    public (Tensor InputIds, Tensor AttentionMask) Encode(IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        int n = prompts.Count, l = MaxLength;
        var ids = new long[n * l];
        var mask = new long[n * l];
        for (int i = 0; i < n; i++)
        {
            var encoded = _wordPiece.Encode(prompts[i]);
            for (int t = 0; t < l; t++)
            {
                bool real = t < encoded.Length;
                ids[i * l + t] = real ? encoded[t] : _wordPiece.PadId;
                mask[i * l + t] = real ? 1 : 0;
            }
        }
        return (tensor(ids, [n, l]), tensor(mask, [n, l]));
    }
}
