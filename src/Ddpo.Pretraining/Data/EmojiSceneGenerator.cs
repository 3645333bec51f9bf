using static TorchSharp.torch;

namespace Ddpo.Data;

/// <summary>
/// Synthetic training images for the built-in tiny text-to-image model: an emoji animal (and, for an
/// activity, the activity's object) at a random position, scale, rotation and flip over a random
/// background (flat, gradient, stripes, checkerboard or noise), so JPEG sizes vary widely.
/// Not thread-safe (one reused bitmap): use one generator per thread.
/// </summary>
internal sealed class EmojiSceneGenerator : IDisposable
{
    private readonly ScenePainter _painter;

    /// <summary>Creates a generator of square images of <paramref name="size"/> pixels (16..512; 32..64 intended).</summary>
    public EmojiSceneGenerator(int size = 32)
    {
        _painter = new ScenePainter(size);
    }

    /// <summary>Image edge in pixels.</summary>
    public int Size => _painter.Size;

    /// <summary>Bytes of one image: 3*Size*Size.</summary>
    public int ImageBytes => 3 * Size * Size;

    /// <summary>Draws the random layout of a scene for <paramref name="prompt"/>.</summary>
    public SceneLayout SampleLayout(ScenePrompt prompt, Random rng) => SceneLayoutSampler.Sample(prompt, Size, rng);

    /// <summary>Paints a layout as planar RGB bytes <c>[3,H,W]</c> (see <see cref="ScenePainter.Paint"/>).</summary>
    public void Paint(SceneLayout layout, Span<byte> destination, bool drawSprites = true) => _painter.Paint(layout, destination, drawSprites);

    /// <summary>A random scene for <paramref name="prompt"/> as planar RGB bytes <c>[3,H,W]</c>.</summary>
    public byte[] Generate(ScenePrompt prompt, Random rng)
    {
        var pixels = new byte[ImageBytes];
        Paint(SampleLayout(prompt, rng), pixels);
        return pixels;
    }

    /// <summary>A random scene for a prompt such as "a cat" or "a cat riding a bike" (see <see cref="ScenePrompt.Parse"/>).</summary>
    public byte[] Generate(string prompt, Random rng) => Generate(ScenePrompt.Parse(prompt), rng);

    /// <summary>A random scene for <paramref name="prompt"/> as a float tensor <c>[3,H,W]</c> in [-1,1].</summary>
    public Tensor GenerateTensor(string prompt, Random rng) => ToFloatImages(Generate(prompt, rng), 1, Size)[0];

    /// <summary>
    /// <paramref name="count"/> random scenes written to <paramref name="destination"/> (count*3*Size*Size bytes,
    /// <c>[N,3,H,W]</c> uint8). Each sample picks an animal uniformly and, with probability
    /// <paramref name="activityFraction"/>, an activity uniformly. Returns the captions ("a cat", "an ant riding a bike").
    /// </summary>
    public string[] GenerateBatch(int count, Random rng, IReadOnlyList<string> animals, IReadOnlyList<string> activities,
        double activityFraction, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(rng);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Validate(animals, activities, activityFraction);
        long needed = (long)count * ImageBytes;
        if (destination.Length < needed)
        {
            throw new ArgumentException($"destination holds {destination.Length} bytes; {count} images of {Size}x{Size} RGB need {needed}", nameof(destination));
        }
        var captions = new string[count];
        for (int i = 0; i < count; i++)
        {
            var animal = animals[rng.Next(animals.Count)];
            string? activity = activities.Count > 0 && rng.NextDouble() < activityFraction ? activities[rng.Next(activities.Count)] : null;
            var prompt = new ScenePrompt(animal, activity);
            captions[i] = prompt.Caption;
            Paint(SampleLayout(prompt, rng), destination.Slice(i * ImageBytes, ImageBytes));
        }
        return captions;
    }

    /// <summary>
    /// <paramref name="count"/> random scenes as a float tensor <c>[N,3,H,W]</c> in [-1,1] with their captions
    /// (sampling as in the byte overload).
    /// </summary>
    public (Tensor Images, string[] Captions) GenerateBatch(int count, Random rng, IReadOnlyList<string> animals,
        IReadOnlyList<string> activities, double activityFraction)
    {
        var pixels = new byte[(long)count * ImageBytes];
        var captions = GenerateBatch(count, rng, animals, activities, activityFraction, pixels);
        return (ToFloatImages(pixels, count, Size), captions);
    }

    /// <summary>Planar uint8 RGB images <c>[N,3,H,W]</c> as a float tensor in [-1,1] (x/127.5 - 1).</summary>
    public static Tensor ToFloatImages(byte[] pixels, int count, int size)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.LongLength != (long)count * 3 * size * size)
        {
            throw new ArgumentException($"{pixels.LongLength} bytes is not {count} images of 3x{size}x{size}", nameof(pixels));
        }
        using var scope = NewDisposeScope();
        using var bytes = tensor(pixels, [count, 3, size, size], ScalarType.Byte);
        return bytes.to_type(ScalarType.Float32).div_(127.5).sub_(1.0).MoveToOuterDisposeScope();
    }

    private static void Validate(IReadOnlyList<string> animals, IReadOnlyList<string> activities, double activityFraction)
    {
        ArgumentNullException.ThrowIfNull(animals);
        ArgumentNullException.ThrowIfNull(activities);
        if (animals.Count == 0) throw new ArgumentException("need at least one animal", nameof(animals));
        foreach (var a in animals)
        {
            if (!SpriteCatalog.Animals.ContainsKey(a))
            {
                throw new ArgumentException($"unknown animal '{a}'; expected one of {string.Join(", ", SpriteCatalog.AnimalNames)}", nameof(animals));
            }
        }
        foreach (var a in activities)
        {
            if (!SpriteCatalog.Activities.ContainsKey(a))
            {
                throw new ArgumentException($"unknown activity '{a}'; expected one of {string.Join(", ", SpriteCatalog.ActivityNames)}", nameof(activities));
            }
        }
        if (!(activityFraction >= 0 && activityFraction <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(activityFraction), activityFraction, "must be in [0,1]");
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _painter.Dispose();
}
