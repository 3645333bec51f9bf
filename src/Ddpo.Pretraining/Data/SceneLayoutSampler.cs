namespace Ddpo.Data;

/// <summary>Draws the random parameters of a scene (background, sprite placement) from a <see cref="Random"/>.</summary>
internal static class SceneLayoutSampler
{
    /// <summary>The animal's edge as a fraction of the image, without an activity.</summary>
    public const double MinAnimalFraction = 0.45, MaxAnimalFraction = 0.85;

    /// <summary>Probability that a scene's sprites get a contrasting outline on a noise background.</summary>
    public const double NoisyOutlineProbability = 0.85;

    /// <summary>Probability that a scene's sprites get a contrasting outline on a striped or checked background.</summary>
    public const double PatternOutlineProbability = 0.6;

    /// <summary>Probability that a scene's sprites get a contrasting outline on a flat or gradient background.</summary>
    public const double SmoothOutlineProbability = 0.1;

    private const double MaxRotation = 25;

    /// <summary>Samples a layout for <paramref name="prompt"/> on a <paramref name="size"/>-pixel square image.</summary>
    public static SceneLayout Sample(ScenePrompt prompt, int size, Random rng)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(rng);
        var background = SampleBackground(size, rng);
        var sprites = prompt.Activity is null
            ? SampleAnimalOnly(prompt.Animal, size, rng)
            : SampleWithActivity(prompt.Animal, prompt.Activity, size, rng);
        // Sticker outlines (in a colour contrasting with the background) keep the sprites readable on busy
        // backgrounds; smooth backgrounds rarely get them, so that their JPEGs stay small. The dark chess pawn
        // always gets one.
        double outlineProbability = background.Kind switch
        {
            BackgroundKind.PixelNoise or BackgroundKind.BlockNoise => NoisyOutlineProbability,
            BackgroundKind.Stripes or BackgroundKind.Checkerboard => PatternOutlineProbability,
            _ => SmoothOutlineProbability,
        };
        bool outline = rng.NextDouble() < outlineProbability;
        int contrast = Luminance(background.Colors) < 110 ? 0xFFFFFF : 0x000000;
        float width = Math.Max(1, size / 32f);
        for (int i = 0; i < sprites.Length; i++)
        {
            if (outline || sprites[i].Sprite == "playing chess")
            {
                sprites[i] = sprites[i] with { OutlineColor = contrast, OutlineWidth = width };
            }
        }
        return new SceneLayout(prompt, background, sprites);
    }

    private static SpritePlacement[] SampleAnimalOnly(string animal, int size, Random rng)
    {
        float s = (float)(size * Uniform(rng, MinAnimalFraction, MaxAnimalFraction));
        float cx = (float)Uniform(rng, s / 2, size - s / 2);
        float cy = (float)Uniform(rng, s / 2, size - s / 2);
        return [new SpritePlacement(animal, cx, cy, s, (float)Uniform(rng, -MaxRotation, MaxRotation), rng.Next(2) == 1)];
    }

    private static SpritePlacement[] SampleWithActivity(string animal, string activity, int size, Random rng)
    {
        bool flip = rng.Next(2) == 1;
        float side = flip ? -1 : 1; // the side the object goes to
        double a, o, ox, oy; // animal edge, object edge, object centre relative to the animal centre (in animal units)
        switch (activity)
        {
            case "riding a bike": // the animal sits on the bike: bike below, overlapping
                a = Uniform(rng, 0.45, 0.62);
                o = Uniform(rng, 0.55, 0.7);
                ox = Uniform(rng, -0.1, 0.1);
                oy = Uniform(rng, 0.45, 0.6);
                break;
            case "washing the dishes": // plate beside the animal, low
                a = Uniform(rng, 0.5, 0.66);
                o = Uniform(rng, 0.36, 0.48);
                ox = side * Uniform(rng, 0.6, 0.8);
                oy = Uniform(rng, 0.15, 0.45);
                break;
            default: // a chess piece or any other object beside the animal
                a = Uniform(rng, 0.5, 0.68);
                o = Uniform(rng, 0.3, 0.42);
                ox = side * Uniform(rng, 0.55, 0.75);
                oy = Uniform(rng, 0.0, 0.35);
                break;
        }
        double aPx = a * size, oPx = o * size;
        double objX = ox * aPx, objY = oy * aPx;
        // Bounding box of both squares, relative to the animal centre; shrink both if it does not fit.
        double minX = Math.Min(-aPx / 2, objX - oPx / 2), maxX = Math.Max(aPx / 2, objX + oPx / 2);
        double minY = Math.Min(-aPx / 2, objY - oPx / 2), maxY = Math.Max(aPx / 2, objY + oPx / 2);
        double fit = Math.Min(1, size * 0.98 / Math.Max(maxX - minX, maxY - minY));
        aPx *= fit; oPx *= fit; objX *= fit; objY *= fit; minX *= fit; maxX *= fit; minY *= fit; maxY *= fit;
        double cx = Uniform(rng, -minX, size - maxX);
        double cy = Uniform(rng, -minY, size - maxY);
        var animalSprite = new SpritePlacement(animal, (float)cx, (float)cy, (float)aPx, (float)Uniform(rng, -MaxRotation, MaxRotation), flip);
        var objectSprite = new SpritePlacement(activity, (float)(cx + objX), (float)(cy + objY), (float)oPx, (float)Uniform(rng, -15, 15), flip);
        return [objectSprite, animalSprite];
    }

    private static BackgroundSpec SampleBackground(int size, Random rng)
    {
        var kind = (BackgroundKind)rng.Next(Enum.GetValues<BackgroundKind>().Length);
        int[] colors = [RandomColor(rng), RandomColor(rng), RandomColor(rng)];
        float angle = (float)Uniform(rng, 0, 180);
        int seed = rng.Next();
        return kind switch
        {
            BackgroundKind.Flat => new BackgroundSpec(kind, colors[..1]),
            BackgroundKind.LinearGradient => new BackgroundSpec(kind, colors[..(2 + rng.Next(2))], angle, (float)(size * Uniform(rng, 0.4, 1.5))),
            BackgroundKind.RadialGradient => new BackgroundSpec(kind, colors[..(2 + rng.Next(2))], 0, (float)(size * Uniform(rng, 0.25, 1.0)),
                (float)rng.NextDouble(), (float)rng.NextDouble()),
            BackgroundKind.Stripes => new BackgroundSpec(kind, colors[..2], angle, (float)Uniform(rng, 1.5, size / 5.0)),
            BackgroundKind.Checkerboard => new BackgroundSpec(kind, colors[..2], rng.Next(3) == 0 ? angle : 0, 2 + rng.Next(Math.Max(1, size / 6))),
            BackgroundKind.PixelNoise => new BackgroundSpec(kind, colors[..2], angle, size, NoiseAmplitude: rng.Next(20, 141), NoiseSeed: seed,
                MonochromeNoise: rng.Next(2) == 0),
            _ => new BackgroundSpec(kind, colors[..2], 0, 2 + rng.Next(Math.Max(1, size / 8)), NoiseAmplitude: rng.Next(30, 129), NoiseSeed: seed,
                MonochromeNoise: rng.Next(3) == 0),
        };
    }

    private static double Luminance(IReadOnlyList<int> colors) =>
        colors.Average(c => 0.299 * ((c >> 16) & 0xFF) + 0.587 * ((c >> 8) & 0xFF) + 0.114 * (c & 0xFF));

    private static int RandomColor(Random rng) => rng.Next(0x1000000);

    private static double Uniform(Random rng, double lo, double hi) => hi <= lo ? lo : lo + (hi - lo) * rng.NextDouble();
}
