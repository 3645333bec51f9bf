using Ddpo.Models.Blocks;
using Ddpo.Runtime;
using Ddpo.Tests.Support;
using Ddpo.Tests.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>
/// The models' convolutions under the safe kernels (oneDNN, output channels padded to a multiple of 8 where a gradient
/// is taken): the same outputs as the plain module, and input, weight and bias gradients within 1e-5 of float64, in
/// every one of several runs (on AMD Zen 5 oneDNN's own backward-data was wrong in most runs for these shapes).
/// Alone: it switches libtorch's process-wide kernels and puts them back.
/// </summary>
[Collection(AloneCollection.Name)]
public sealed class SafeConvTests
{
    [Theory]
    [InlineData(32, 4, 1)]
    [InlineData(8, 3, 1)]
    [InlineData(16, 12, 2)]
    public void PaddedConvolutionGivesTheModulesOutputAndRightGradients(long inChannels, long outChannels, long stride)
    {
        Assert.True(LibTorchSwitches.TryGet(out var before));
        bool padBefore = CpuKernels.PadConvolutionChannels;
        try
        {
            CpuKernels.UseSafeKernels();
            Assert.True(CpuKernels.PadConvolutionChannels);
            using var conv64 = nn.Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, dtype: ScalarType.Float64);
            using var conv32 = nn.Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1);
            using (no_grad())
            {
                conv32.weight!.copy_(conv64.weight!);
                conv32.bias!.copy_(conv64.bias!);
            }
            var g = new Generator(7);
            using var x64 = randn([2, inChannels, 16, 16], dtype: ScalarType.Float64, generator: g).requires_grad_(true);
            using var r64 = randn([2, outChannels, 16 / stride, 16 / stride], dtype: ScalarType.Float64, generator: g);
            (SafeConv.Call(conv64, x64) * r64).sum().backward();
            for (int run = 0; run < 5; run++)
            {
                using var scope = NewDisposeScope();
                conv32.zero_grad();
                var x = x64.detach().to(ScalarType.Float32).requires_grad_(true);
                var y = SafeConv.Call(conv32, x);
                using (no_grad()) TensorAssert.Close(conv32.call(x), y, 1e-6, 1e-5, "padded vs plain output");
                (y * r64.to(ScalarType.Float32)).sum().backward();
                Relative(x64.grad!, x.grad!, "input gradient");
                Relative(conv64.weight!.grad!, conv32.weight!.grad!, "weight gradient");
                Relative(conv64.bias!.grad!, conv32.bias!.grad!, "bias gradient");
            }
        }
        finally
        {
            LibTorchSwitches.Set(before.MkldnnEnabled, before.FlashAttentionEnabled, before.NnpackEnabled ?? true);
            CpuKernels.PadConvolutionChannels = padBefore;
        }
    }

    private static void Relative(Tensor reference, Tensor actual, string what)
    {
        double error = (actual.to(ScalarType.Float64) - reference).abs().max().item<double>() / reference.abs().max().item<double>();
        Assert.True(error < 1e-5, $"{what}: {error:g3} of its largest value off float64");
    }
}
