using System.Numerics;

namespace Ddpo.Training;

/// <summary>
/// A seeded xoshiro256** generator (state: 4 ulongs, seeded by splitmix64) whose state can be saved
/// in a checkpoint and restored, so prompt choices, shuffles and permutations continue exactly on resume.
/// It derives from <see cref="Random"/> (every virtual member overridden, so nothing of System.Random's
/// own algorithm is used) and can be passed wherever a <see cref="Random"/> is expected.
/// </summary>
public sealed class TrainingRng : Random
{
    private ulong _s0, _s1, _s2, _s3;

    /// <summary>Seeds the state from <paramref name="seed"/> with splitmix64.</summary>
    public TrainingRng(ulong seed)
    {
        ulong x = seed;
        _s0 = SplitMix64(ref x);
        _s1 = SplitMix64(ref x);
        _s2 = SplitMix64(ref x);
        _s3 = SplitMix64(ref x);
    }

    /// <summary>Seeds from a config seed (negative seeds are reinterpreted as unsigned).</summary>
    public TrainingRng(long seed) : this(unchecked((ulong)seed)) { }

    /// <summary>Restores a generator from <see cref="GetState"/>.</summary>
    public static TrainingRng FromState(IReadOnlyList<ulong> state)
    {
        var rng = new TrainingRng(0UL);
        rng.SetState(state);
        return rng;
    }

    /// <summary>The 4-word state.</summary>
    public ulong[] GetState() => [_s0, _s1, _s2, _s3];

    /// <summary>Replaces the state; it must be 4 words, not all zero.</summary>
    public void SetState(IReadOnlyList<ulong> state)
    {
        if (state.Count != 4) throw new ArgumentException($"TrainingRng state: expected 4 words, got {state.Count}", nameof(state));
        if (state.All(w => w == 0)) throw new ArgumentException("TrainingRng state: all-zero state is invalid", nameof(state));
        (_s0, _s1, _s2, _s3) = (state[0], state[1], state[2], state[3]);
    }

    private static ulong SplitMix64(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        ulong result = BitOperations.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitOperations.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>A uniform integer in [0, <paramref name="bound"/>) without modulo bias.</summary>
    public ulong NextBounded(ulong bound)
    {
        if (bound == 0) throw new ArgumentOutOfRangeException(nameof(bound), "bound must be positive");
        ulong threshold = (0UL - bound) % bound; // 2^64 mod bound
        while (true)
        {
            ulong r = NextUInt64();
            if (r >= threshold) return r % bound;
        }
    }

    /// <summary>A seed for another generator (e.g. a torch <c>Generator</c>), drawn from this one.</summary>
    public long NextSeed() => (long)(NextUInt64() >> 1);

    /// <summary>A uniformly random permutation of 0..<paramref name="n"/>-1 (Fisher-Yates).</summary>
    public int[] Permutation(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)NextBounded((ulong)(i + 1));
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }

    /// <inheritdoc/>
    public override int Next() => (int)NextBounded(int.MaxValue);

    /// <inheritdoc/>
    public override int Next(int maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxValue);
        return maxValue == 0 ? 0 : (int)NextBounded((ulong)maxValue);
    }

    /// <inheritdoc/>
    public override int Next(int minValue, int maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minValue, maxValue);
        long range = (long)maxValue - minValue;
        return range == 0 ? minValue : (int)(minValue + (long)NextBounded((ulong)range));
    }

    /// <inheritdoc/>
    public override long NextInt64() => (long)NextBounded(long.MaxValue);

    /// <inheritdoc/>
    public override long NextInt64(long maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxValue);
        return maxValue == 0 ? 0 : (long)NextBounded((ulong)maxValue);
    }

    /// <inheritdoc/>
    public override long NextInt64(long minValue, long maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minValue, maxValue);
        ulong range = unchecked((ulong)(maxValue - minValue));
        return range == 0 ? minValue : unchecked(minValue + (long)NextBounded(range));
    }

    /// <inheritdoc/>
    public override double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <inheritdoc/>
    public override float NextSingle() => (NextUInt64() >> 40) * (1.0f / (1U << 24));

    /// <inheritdoc/>
    protected override double Sample() => NextDouble();

    /// <inheritdoc/>
    public override void NextBytes(byte[] buffer) => NextBytes(buffer.AsSpan());

    /// <inheritdoc/>
    public override void NextBytes(Span<byte> buffer)
    {
        for (int i = 0; i < buffer.Length; i += 8)
        {
            ulong r = NextUInt64();
            for (int k = 0; k < 8 && i + k < buffer.Length; k++) buffer[i + k] = (byte)(r >> (8 * k));
        }
    }
}
