namespace Ddpo.Data;

/// <summary>The kinds of background <see cref="EmojiSceneGenerator"/> paints behind the sprites.</summary>
internal enum BackgroundKind
{
    /// <summary>One flat colour.</summary>
    Flat,
    /// <summary>A linear gradient between two or three colours, mirrored beyond its length.</summary>
    LinearGradient,
    /// <summary>A radial gradient between two or three colours, mirrored beyond its radius.</summary>
    RadialGradient,
    /// <summary>Stripes of two colours at an angle.</summary>
    Stripes,
    /// <summary>A checkerboard of two colours, possibly rotated.</summary>
    Checkerboard,
    /// <summary>Per-pixel random noise around a colour gradient.</summary>
    PixelNoise,
    /// <summary>Random colour blocks (blocky noise).</summary>
    BlockNoise,
}

/// <summary>A background: its kind and parameters (which ones matter depends on <see cref="Kind"/>).</summary>
/// <param name="Kind">What is painted.</param>
/// <param name="Colors">Two or three colours as 0xRRGGBB.</param>
/// <param name="AngleDegrees">Gradient, stripe or checkerboard direction.</param>
/// <param name="Scale">Gradient length or radius, stripe width, checker cell or noise block edge, in pixels.</param>
/// <param name="CenterX">Radial gradient centre, as a fraction of the image width.</param>
/// <param name="CenterY">Radial gradient centre, as a fraction of the image height.</param>
/// <param name="NoiseAmplitude">Noise: the largest per-channel deviation (0..255).</param>
/// <param name="NoiseSeed">Noise: seed of the pixel noise, so the same layout always paints the same pixels.</param>
/// <param name="MonochromeNoise">Noise: the same deviation on all three channels.</param>
internal sealed record BackgroundSpec(
    BackgroundKind Kind,
    IReadOnlyList<int> Colors,
    float AngleDegrees = 0,
    float Scale = 8,
    float CenterX = 0.5f,
    float CenterY = 0.5f,
    int NoiseAmplitude = 0,
    int NoiseSeed = 0,
    bool MonochromeNoise = false);

/// <summary>One sprite drawn on the scene.</summary>
/// <param name="Sprite">Sprite name (an animal word or an activity, see <see cref="SpriteLibrary"/>).</param>
/// <param name="CenterX">Centre, in pixels from the left.</param>
/// <param name="CenterY">Centre, in pixels from the top.</param>
/// <param name="Size">Edge of the (square) sprite, in pixels.</param>
/// <param name="RotationDegrees">Clockwise rotation about the centre.</param>
/// <param name="FlipHorizontal">Mirror left-right before rotating.</param>
/// <param name="OutlineColor">A sticker-like outline of this colour (0xRRGGBB) around the sprite, or null for none.</param>
/// <param name="OutlineWidth">Outline width in pixels.</param>
internal sealed record SpritePlacement(string Sprite, float CenterX, float CenterY, float Size, float RotationDegrees = 0, bool FlipHorizontal = false,
    int? OutlineColor = null, float OutlineWidth = 1);

/// <summary>Everything random about one scene: drawing a layout is deterministic.</summary>
/// <param name="Prompt">What the scene shows.</param>
/// <param name="Background">The background.</param>
/// <param name="Sprites">Sprites in drawing order (later ones on top).</param>
internal sealed record SceneLayout(ScenePrompt Prompt, BackgroundSpec Background, IReadOnlyList<SpritePlacement> Sprites);
