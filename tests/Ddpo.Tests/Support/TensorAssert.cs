using Ddpo.Diagnostics;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Support;

/// <summary>Closeness assertions that report the worst error (the comparison is the library's, shared with <c>ddpo gpu-check</c>).</summary>
public static class TensorAssert
{
    /// <summary>
    /// Asserts |actual - expected| &lt;= atol + rtol * |expected| everywhere (fp32 on the CPU), with
    /// shapes equal. The failure message gives the max absolute error and where it is.
    /// </summary>
    public static void Close(Tensor expected, Tensor actual, double atol = 1e-4, double rtol = 1e-4, string what = "tensor")
    {
        Assert.Equal(expected.shape, actual.shape);
        var c = TensorComparison.Of(expected, actual, atol, rtol, what);
        Assert.False(double.IsNaN(c.MaxAbsError), $"{what}: NaN in the result");
        Assert.True(c.Violations == 0,
            $"{what}: {c.Violations} of {c.Count} elements outside atol {atol} + rtol {rtol}; max abs error {c.MaxAbsError:g4} " +
            $"(expected range [{c.ExpectedMin:g4}, {c.ExpectedMax:g4}])");
    }
}
