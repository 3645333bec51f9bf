using Ddpo.Models.Blocks;
using Ddpo.Runtime;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Tests.Runtime;

/// <summary>
/// The GPU-side settings that can be exercised without a GPU: libtorch's global TF32 and cuDNN-benchmark switches
/// (they live in libtorch's context, CPU build included), the host copies' CPU path, and attention precision.
/// </summary>
[Collection("cli")] // the switches are process-wide: not beside tests that read them
public sealed class CudaPerformanceTests
{
    [Fact]
    public void Tf32SwitchesRoundTripThroughLibtorch()
    {
        bool matmul = CudaPerformance.MatmulTf32, cudnn = CudaPerformance.CudnnTf32;
        try
        {
            CudaPerformance.SetTf32(true);
            Assert.True(CudaPerformance.MatmulTf32);
            Assert.True(CudaPerformance.CudnnTf32);
            CudaPerformance.SetTf32(false);
            Assert.False(CudaPerformance.MatmulTf32);
            Assert.False(CudaPerformance.CudnnTf32);
        }
        finally
        {
            backends.cuda.matmul.allow_tf32 = matmul;
            backends.cudnn.allow_tf32 = cudnn;
        }
    }

    [Fact]
    public void CudnnBenchmarkIsSetOnLibtorchsContext()
    {
        var before = CudaPerformance.CudnnBenchmark;
        Assert.NotNull(before); // the exported at::Context symbols were found in the loaded libtorch
        try
        {
            Assert.True(CudaPerformance.TrySetCudnnBenchmark(true));
            Assert.True(CudaPerformance.CudnnBenchmark);
            Assert.True(CudaPerformance.TrySetCudnnBenchmark(false));
            Assert.False(CudaPerformance.CudnnBenchmark);
        }
        finally
        {
            CudaPerformance.TrySetCudnnBenchmark(before!.Value);
        }
    }

    [Fact]
    public void ConfigureChangesNothingOnTheCpu()
    {
        bool matmul = CudaPerformance.MatmulTf32;
        var bench = CudaPerformance.CudnnBenchmark;
        Assert.StartsWith("cpu", CudaPerformance.Configure(CPU));
        Assert.Equal(matmul, CudaPerformance.MatmulTf32);
        Assert.Equal(bench, CudaPerformance.CudnnBenchmark);
    }

    [Fact]
    public void HostCopiesOnTheCpuKeepTheValues()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 4, 4, generator: new Generator(3));
        var host = HostCopy.ToHost(x);
        var back = HostCopy.ToDevice(host, CPU);
        Assert.Equal(DeviceType.CPU, host.device_type);
        TensorAssert.Close(x, host, atol: 0, rtol: 0, what: "to host");
        TensorAssert.Close(x, back, atol: 0, rtol: 0, what: "to device");
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void AttentionStaysInHalfPrecisionUnlessTheConfigAsksToUpcast(ScalarType half)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(11);
        Tensor Draw() => randn(2, 4, 16, 8, generator: g);
        Tensor q = Draw(), k = Draw(), v = Draw();
        var (qh, kh, vh) = (q.to(half), k.to(half), v.to(half));

        var plain = AttentionKernel.Compute(qh, kh, vh, upcast: false);
        Assert.Equal(half, plain.dtype);
        // exactly libtorch's fused SDPA on the half inputs: no float32 detour
        TensorAssert.Close(F.scaled_dot_product_attention(qh, kh, vh), plain, atol: 0, rtol: 0, what: "half SDPA");

        var upcast = AttentionKernel.Compute(qh, kh, vh, upcast: true);
        Assert.Equal(half, upcast.dtype);
        var reference = F.scaled_dot_product_attention(qh.to(ScalarType.Float32), kh.to(ScalarType.Float32), vh.to(ScalarType.Float32));
        TensorAssert.Close(reference.to(half), upcast, atol: 0, rtol: 0, what: "upcast SDPA");
        // both are attention: close to the float32 result
        TensorAssert.Close(F.scaled_dot_product_attention(q, k, v), plain, atol: half == ScalarType.Float16 ? 5e-3 : 5e-2, rtol: 0, what: "vs fp32");
    }
}
