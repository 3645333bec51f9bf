using System.Text;
using Ddpo.Models.Loading;

namespace Ddpo.Tokenizers;

/// <summary>A sentencepiece piece: its text, log-probability score and type (sentencepiece's enum).</summary>
internal readonly record struct T5TokenizerPiece(string Text, float Score, int Type)
{
    public const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;
}

/// <summary>
/// The parts of a sentencepiece <c>spiece.model</c> (a <c>ModelProto</c> protobuf) that T5's tokenizer uses: the
/// pieces, the model type and special ids (<c>TrainerSpec</c>) and the normaliser (<c>NormalizerSpec</c>: its
/// precompiled character map and whitespace flags). A minimal protobuf reader: Microsoft.ML.Tokenizers 2.0.1's
/// <c>SentencePieceTokenizer</c> only implements BPE models and ignores the precompiled map, so it cannot read T5's.
/// </summary>
internal sealed class T5TokenizerModelFile
{
    public required List<T5TokenizerPiece> Pieces { get; init; }
    public int ModelType { get; init; } = 1;
    public int UnkId { get; init; }
    public int EosId { get; init; } = 2;
    public int PadId { get; init; } = -1;
    public bool ByteFallback { get; init; }
    public byte[]? PrecompiledCharsmap { get; init; }
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;

    /// <summary>Reads and checks a <c>spiece.model</c>; a missing, corrupt or non-unigram file is a <see cref="ModelLoadException"/> naming it.</summary>
    public static T5TokenizerModelFile Read(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: sentencepiece model file not found");
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            var pieces = new List<T5TokenizerPiece>();
            int modelType = 1, unk = 0, eos = 2, pad = -1;
            bool byteFallback = false, dummy = true, extra = true, escape = true;
            byte[]? charsmap = null;
            foreach (var (field, wire, value, data) in Fields(bytes, 0, bytes.Length))
            {
                if (field == 1 && wire == 2)
                {
                    string text = ""; float score = 0; int type = T5TokenizerPiece.Normal;
                    foreach (var (f, w, v, d) in Fields(bytes, data.Start, data.End))
                    {
                        if (f == 1 && w == 2) text = Encoding.UTF8.GetString(bytes, d.Start, d.End - d.Start);
                        else if (f == 2 && w == 5) score = BitConverter.Int32BitsToSingle((int)v);
                        else if (f == 3 && w == 0) type = (int)v;
                    }
                    pieces.Add(new T5TokenizerPiece(text, score, type));
                }
                else if (field == 2 && wire == 2)
                {
                    foreach (var (f, w, v, _) in Fields(bytes, data.Start, data.End))
                    {
                        if (w != 0) continue;
                        switch (f)
                        {
                            case 3: modelType = (int)v; break;
                            case 35: byteFallback = v != 0; break;
                            case 40: unk = (int)v; break;
                            case 42: eos = (int)v; break;
                            case 43: pad = (int)v; break;
                        }
                    }
                }
                else if (field == 3 && wire == 2)
                {
                    foreach (var (f, w, v, d) in Fields(bytes, data.Start, data.End))
                    {
                        if (f == 2 && w == 2) charsmap = bytes[d.Start..d.End];
                        else if (f == 3 && w == 0) dummy = v != 0;
                        else if (f == 4 && w == 0) extra = v != 0;
                        else if (f == 5 && w == 0) escape = v != 0;
                    }
                }
            }
            if (pieces.Count == 0) throw new ModelLoadException($"{path}: not a sentencepiece model (no pieces)");
            if (modelType != 1) throw new ModelLoadException($"{path}: sentencepiece model type {modelType} is not supported (T5 uses the unigram model, type 1)");
            if (byteFallback) throw new ModelLoadException($"{path}: byte fallback is not supported (T5's model has none)");
            foreach (var (name, id) in new[] { ("unk_id", unk), ("eos_id", eos) })
            {
                if (id < 0 || id >= pieces.Count) throw new ModelLoadException($"{path}: {name} {id} is outside the {pieces.Count} pieces");
            }
            return new T5TokenizerModelFile
            {
                Pieces = pieces, ModelType = modelType, UnkId = unk, EosId = eos, PadId = pad, ByteFallback = byteFallback,
                PrecompiledCharsmap = charsmap, AddDummyPrefix = dummy, RemoveExtraWhitespaces = extra, EscapeWhitespaces = escape,
            };
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentException or OverflowException or DecoderFallbackException)
        {
            throw new ModelLoadException($"{path}: corrupt sentencepiece model ({e.Message})", e);
        }
    }

    /// <summary>The protobuf fields of bytes[start..end]: number, wire type, varint/fixed value, and the length-delimited range.</summary>
    private static IEnumerable<(int Field, int Wire, ulong Value, (int Start, int End) Data)> Fields(byte[] b, int start, int end)
    {
        int i = start;
        while (i < end)
        {
            ulong key = Varint(b, ref i, end);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: yield return (field, wire, Varint(b, ref i, end), default); break;
                case 1: Need(i + 8, end); yield return (field, wire, BitConverter.ToUInt64(b, i), default); i += 8; break;
                case 2:
                    long n = (long)Varint(b, ref i, end);
                    if (n < 0 || i + n > end) throw new ArgumentException("a length-delimited field runs past its message");
                    yield return (field, wire, 0, (i, i + (int)n));
                    i += (int)n;
                    break;
                case 5: Need(i + 4, end); yield return (field, wire, BitConverter.ToUInt32(b, i), default); i += 4; break;
                default: throw new ArgumentException($"unsupported protobuf wire type {wire}");
            }
        }
    }

    private static void Need(int upTo, int end)
    {
        if (upTo > end) throw new ArgumentException("a fixed-size field runs past its message");
    }

    private static ulong Varint(byte[] b, ref int i, int end)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (i >= end) throw new ArgumentException("truncated varint");
            byte c = b[i++];
            result |= (ulong)(c & 0x7F) << shift;
            if (c < 0x80) return result;
        }
        throw new ArgumentException("varint longer than 10 bytes");
    }
}
