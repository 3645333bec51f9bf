namespace Ddpo.Training;

/// <summary>
/// Derives independent, reproducible seeds from the run seed, the epoch and a purpose, so that every
/// epoch's randomness (prompts, noise, shuffles) depends only on those: a resumed run replays exactly
/// what an uninterrupted run would have done, with no random-generator state to save.
/// </summary>
internal static class SeedMix
{
    /// <summary>A 64-bit seed for (<paramref name="seed"/>, <paramref name="epoch"/>, <paramref name="purpose"/>, <paramref name="index"/>).</summary>
    public static ulong Derive(long seed, int epoch, string purpose, int index = 0)
    {
        ulong h = SplitMix((ulong)seed);
        h = SplitMix(h ^ (ulong)(uint)epoch);
        foreach (char c in purpose) h = SplitMix(h ^ c);
        return SplitMix(h ^ (ulong)(uint)index);
    }

    /// <summary>A non-negative 31-bit seed for <see cref="Random"/>.</summary>
    public static int DeriveInt(long seed, int epoch, string purpose, int index = 0) =>
        (int)(Derive(seed, epoch, purpose, index) & 0x7fffffff);

    private static ulong SplitMix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
