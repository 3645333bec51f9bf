using SkiaSharp;

namespace Ddpo.Data;

/// <summary>The emoji sprites embedded in the assembly (<c>Data/Sprites/NAME.png</c>, 48x48 RGBA).</summary>
internal static class SpriteLibrary
{
    private const string ResourcePrefix = "Ddpo.Data.Sprites.";

    /// <summary>Names of the embedded sprites (animal words, activities with underscores), sorted.</summary>
    public static IReadOnlyList<string> Names { get; } = typeof(SpriteLibrary).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".png", StringComparison.Ordinal))
        .Select(n => n[ResourcePrefix.Length..^4])
        .Order(StringComparer.Ordinal)
        .ToArray();

    /// <summary>The PNG bytes of a sprite; <paramref name="name"/> is an animal or an activity (spaces allowed).</summary>
    public static byte[] ReadPng(string name)
    {
        var resource = ResourcePrefix + SpriteCatalog.SpriteName(name) + ".png";
        using var stream = typeof(SpriteLibrary).Assembly.GetManifestResourceStream(resource)
            ?? throw new ArgumentException($"no embedded sprite '{resource}'; available: {string.Join(", ", Names)}", nameof(name));
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>Decodes a sprite to an unpremultiplied RGBA8888 bitmap (the caller disposes it).</summary>
    public static SKBitmap LoadBitmap(string name)
    {
        using var data = SKData.CreateCopy(ReadPng(name));
        using var codec = SKCodec.Create(data)
            ?? throw new InvalidDataException($"embedded sprite '{name}' is not an image SkiaSharp can decode");
        var info = codec.Info.WithColorType(SKColorType.Rgba8888).WithAlphaType(SKAlphaType.Unpremul);
        return SKBitmap.Decode(codec, info)
            ?? throw new InvalidDataException($"embedded sprite '{name}' could not be decoded to RGBA");
    }
}
