using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Support;

/// <summary>Closeness assertions that report the worst error.</summary>
public static class TensorAssert
{
    /// <summary>
    /// Asserts |actual - expected| &lt;= atol + rtol * |expected| everywhere (fp32 on the CPU), with
    /// shapes equal. The failure message gives the max absolute error and where it is.
    /// </summary>
    public static void Close(Tensor expected, Tensor actual, double atol = 1e-4, double rtol = 1e-4, string what = "tensor")
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = NewDisposeScope();
        var e = expected.detach().cpu().to(ScalarType.Float64);
        var a = actual.detach().cpu().to(ScalarType.Float64);
        var diff = (a - e).abs();
        var allowed = atol + rtol * e.abs();
        var maxAbs = diff.max().item<double>();
        var violations = (diff > allowed).sum().item<long>();
        Assert.False(double.IsNaN(maxAbs), $"{what}: NaN in the result");
        Assert.True(violations == 0,
            $"{what}: {violations} of {e.numel()} elements outside atol {atol} + rtol {rtol}; max abs error {maxAbs:g4} " +
            $"(expected range [{e.min().item<double>():g4}, {e.max().item<double>():g4}])");
    }
}
