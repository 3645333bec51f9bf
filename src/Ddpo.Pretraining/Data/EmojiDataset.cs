using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using static TorchSharp.torch;
using Ddpo.Runtime;

namespace Ddpo.Data;

/// <summary>
/// A folder of synthetic training images for pretraining the built-in model:
/// <c>images.safetensors</c> (tensor <c>images</c>, uint8 <c>[N,3,H,W]</c>) and <c>captions.json</c>
/// (<c>{"format":"ddpo-emoji-dataset","version":1,"count":N,"size":H,"captions":[...]}</c>).
/// </summary>
internal sealed class EmojiDataset : IDisposable
{
    /// <summary>File name of the images.</summary>
    public const string ImagesFile = "images.safetensors";
    /// <summary>File name of the captions.</summary>
    public const string CaptionsFile = "captions.json";
    /// <summary>Name of the image tensor in <see cref="ImagesFile"/>.</summary>
    public const string ImagesTensor = "images";
    private const string Format = "ddpo-emoji-dataset";

    private EmojiDataset(Tensor images, string[] captions)
    {
        Images = images;
        Captions = captions;
    }

    /// <summary>All images, uint8 <c>[N,3,H,W]</c> on the CPU.</summary>
    public Tensor Images { get; }

    /// <summary>The caption of each image.</summary>
    public IReadOnlyList<string> Captions { get; }

    /// <summary>Number of samples.</summary>
    public int Count => Captions.Count;

    /// <summary>Image edge in pixels.</summary>
    public int Size => (int)Images.shape[2];

    /// <summary>The images at <paramref name="indices"/> as a float tensor <c>[B,3,H,W]</c> in [-1,1].</summary>
    public Tensor GetImages(long[] indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        foreach (var i in indices)
        {
            if (i < 0 || i >= Count) throw new ArgumentOutOfRangeException(nameof(indices), i, $"index outside 0..{Count - 1}");
        }
        using var scope = NewDisposeScope();
        using var idx = tensor(indices, ScalarType.Int64);
        return Images.index_select(0, idx).to_type(ScalarType.Float32).div_(127.5).sub_(1.0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Generates <paramref name="count"/> scenes of <paramref name="size"/> pixels with <see cref="EmojiSceneGenerator"/>
    /// (all 45 animals; a fraction <paramref name="activityFraction"/> with one of the 3 activities) and writes them to
    /// <paramref name="folder"/>. Deterministic for a given <paramref name="seed"/>.
    /// </summary>
    public static void Generate(string folder, int count, int size = 32, int seed = 0, double activityFraction = 0.25)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        using var generator = new EmojiSceneGenerator(size);
        var pixels = new byte[(long)count * generator.ImageBytes];
        var captions = generator.GenerateBatch(count, new Random(seed), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, activityFraction, pixels);
        Write(folder, pixels, count, size, captions);
    }

    /// <summary>Writes planar uint8 RGB images (<c>[N,3,size,size]</c> bytes) and their captions to <paramref name="folder"/>.</summary>
    public static void Write(string folder, byte[] pixels, int count, int size, IReadOnlyList<string> captions)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.LongLength != (long)count * 3 * size * size)
        {
            throw new ArgumentException($"{pixels.LongLength} bytes is not {count} images of 3x{size}x{size}", nameof(pixels));
        }
        using var images = tensor(pixels, [count, 3, size, size], ScalarType.Byte);
        Write(folder, images, captions);
    }

    /// <summary>Writes uint8 images <c>[N,3,H,H]</c> and their captions to <paramref name="folder"/> (created if needed).</summary>
    public static void Write(string folder, Tensor images, IReadOnlyList<string> captions)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(captions);
        if (images.dtype != ScalarType.Byte || images.dim() != 4 || images.shape[1] != 3 || images.shape[2] != images.shape[3])
        {
            throw new ArgumentException($"images must be uint8 [N,3,H,H]; got {images.dtype} [{string.Join(",", images.shape)}]", nameof(images));
        }
        if (images.shape[0] != captions.Count)
        {
            throw new ArgumentException($"{images.shape[0]} images but {captions.Count} captions", nameof(captions));
        }
        Directory.CreateDirectory(folder);
        SafetensorsFile.SaveAtomic(Path.Combine(folder, ImagesFile), new Dictionary<string, Tensor> { [ImagesTensor] = images });
        var json = new JsonObject
        {
            ["format"] = Format,
            ["version"] = 1,
            ["count"] = captions.Count,
            ["size"] = images.shape[2],
            ["captions"] = new JsonArray(captions.Select(c => (JsonNode?)JsonValue.Create(c)).ToArray()),
        };
        var captionsPath = Path.Combine(folder, CaptionsFile);
        AtomicFile.WriteAllText(captionsPath, json.ToJsonString());
    }

    /// <summary>
    /// Reads a dataset folder written by <see cref="Write(string, Tensor, IReadOnlyList{string})"/>; a missing or
    /// malformed file is an <see cref="InvalidDataException"/> naming it and what was expected.
    /// </summary>
    public static EmojiDataset Load(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: dataset folder not found");
        var captionsPath = Path.Combine(folder, CaptionsFile);
        var imagesPath = Path.Combine(folder, ImagesFile);
        if (!File.Exists(captionsPath)) throw new InvalidDataException($"{captionsPath}: not found (a dataset folder holds {ImagesFile} and {CaptionsFile})");
        var captions = ReadCaptions(captionsPath, out int size);
        Dictionary<string, Tensor> tensors;
        try
        {
            tensors = SafetensorsFile.Load(imagesPath);
        }
        catch (ModelLoadException e)
        {
            throw new InvalidDataException(e.Message, e);
        }
        if (!tensors.Remove(ImagesTensor, out var images))
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw new InvalidDataException($"{imagesPath}: no tensor '{ImagesTensor}'");
        }
        foreach (var t in tensors.Values) t.Dispose();
        if (images.dtype != ScalarType.Byte || images.dim() != 4 || images.shape[1] != 3 || images.shape[2] != size || images.shape[3] != size
            || images.shape[0] != captions.Length)
        {
            var got = $"{images.dtype} [{string.Join(",", images.shape)}]";
            images.Dispose();
            throw new InvalidDataException($"{imagesPath}: tensor '{ImagesTensor}' is {got}; expected uint8 [{captions.Length},3,{size},{size}] to match {CaptionsFile}");
        }
        return new EmojiDataset(images, captions);
    }

    private static string[] ReadCaptions(string path, out int size)
    {
        JsonObject root;
        try
        {
            root = StrictJson.Parse(Utf8Text.ReadFile(path, message => new InvalidDataException(message))) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
        if (root["format"]?.GetValueKind() != JsonValueKind.String || root["format"]!.GetValue<string>() != Format)
        {
            throw new InvalidDataException($"{path}: field 'format' must be \"{Format}\"");
        }
        if (root["size"] is not JsonValue sizeNode || !sizeNode.TryGetValue(out size) || size < 1)
        {
            throw new InvalidDataException($"{path}: field 'size' must be a positive integer");
        }
        if (root["captions"] is not JsonArray array)
        {
            throw new InvalidDataException($"{path}: field 'captions' must be an array of strings");
        }
        var captions = new string[array.Count];
        for (int i = 0; i < captions.Length; i++)
        {
            captions[i] = array[i] is JsonValue v && v.TryGetValue(out string? s) && s is not null
                ? s
                : throw new InvalidDataException($"{path}: field 'captions[{i}]' must be a string");
        }
        if (root["count"] is not JsonValue countNode || !countNode.TryGetValue(out int count) || count != captions.Length)
        {
            throw new InvalidDataException($"{path}: field 'count' must equal the number of captions ({captions.Length})");
        }
        return captions;
    }

    /// <inheritdoc/>
    public void Dispose() => Images.Dispose();
}
