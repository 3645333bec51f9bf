using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>How far one tensor is from another: what the fixture tests assert and what the GPU check reports.</summary>
/// <param name="MaxAbsError">max |actual - expected| (NaN when either holds a NaN).</param>
/// <param name="Violations">Elements outside <c>atol + rtol * |expected|</c>.</param>
/// <param name="Count">Elements compared.</param>
/// <param name="ExpectedMin">Smallest expected value (for messages).</param>
/// <param name="ExpectedMax">Largest expected value.</param>
/// <param name="ExpectedMaxAbs">Largest |expected| (to read an error relative to the values' scale).</param>
internal sealed record TensorComparison(double MaxAbsError, long Violations, long Count, double ExpectedMin, double ExpectedMax, double ExpectedMaxAbs)
{
    /// <summary>True when no element is outside the tolerance and nothing is NaN.</summary>
    public bool Within => Violations == 0 && !double.IsNaN(MaxAbsError);

    /// <summary>The max abs error over the largest |expected| (0 when both are 0).</summary>
    public double RelativeToScale => ExpectedMaxAbs > 0 ? MaxAbsError / ExpectedMaxAbs : MaxAbsError;

    /// <summary>
    /// Compares in float64 on the CPU, whatever the tensors' dtype and device. Shapes must be equal
    /// (<see cref="ArgumentException"/> naming <paramref name="what"/> otherwise).
    /// </summary>
    public static TensorComparison Of(Tensor expected, Tensor actual, double atol = 1e-4, double rtol = 1e-4, string what = "tensor")
    {
        if (!expected.shape.SequenceEqual(actual.shape))
        {
            throw new ArgumentException($"{what}: shape [{string.Join(",", actual.shape)}], expected [{string.Join(",", expected.shape)}]");
        }
        using var scope = NewDisposeScope();
        var e = expected.detach().cpu().to(ScalarType.Float64);
        var a = actual.detach().cpu().to(ScalarType.Float64);
        var diff = (a - e).abs();
        bool nan = a.isnan().any().item<bool>() || e.isnan().any().item<bool>();
        double maxAbs = nan ? double.NaN : (e.numel() == 0 ? 0 : diff.max().item<double>());
        long violations = e.numel() == 0 ? 0 : (diff > atol + rtol * e.abs()).sum().item<long>();
        double min = e.numel() == 0 ? 0 : e.min().item<double>(), max = e.numel() == 0 ? 0 : e.max().item<double>();
        return new TensorComparison(maxAbs, nan ? e.numel() : violations, e.numel(), min, max, Math.Max(Math.Abs(min), Math.Abs(max)));
    }
}
