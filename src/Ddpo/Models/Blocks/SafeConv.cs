using Ddpo.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Blocks;

/// <summary>
/// Every Conv2d of the model families runs through here. With the safe CPU kernels oneDNN computes the convolutions,
/// and on AMD Zen 5 it is wrong when a channel count is not a multiple of 8 (docs/cpu-gradients.md): the backward-data
/// kernel at batch >= 2 for such output channels (a UNet's conv_out has 4), the forward kernel for such input channels
/// above 8 (12: an SDXL-style UNet's skip concatenations). Such a convolution runs with its input and filters padded
/// by zeros up to the next multiple of 8 on both channel axes, and the extra output channels are cut off. The output
/// and every gradient are the same (zero channels add nothing, and the cut outputs get no gradient); only the kernel
/// oneDNN picks changes. With or without gradients, so that sampling and training run the same kernel (an importance
/// ratio of exactly 1 at the first step, a KL of exactly 0 at the start). Elsewhere (other profiles, CUDA, channels
/// already multiples of 8) it is the module's call.
/// </summary>
internal static class SafeConv
{
    private const long Multiple = 8;

    /// <summary><paramref name="conv"/>(<paramref name="x"/>), padded as above where it has to be.</summary>
    public static Tensor Call(Conv2d conv, Tensor x) => conv.padding is { } padding && NeedsPadding(x, conv.weight!, conv.bias)
        ? Padded(x, conv.weight!, conv.bias, conv.stride, padding, conv.dilation, conv.groups)
        : conv.call(x);

    /// <summary><c>F.conv2d</c> with zero padding, padded as above where it has to be (the gradient check's convolutions).</summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, long stride, long padding) => NeedsPadding(x, weight, bias)
        ? Padded(x, weight, bias, [stride, stride], [padding, padding], [1, 1], 1)
        : F.conv2d(x, weight, bias, strides: [stride, stride], padding: [padding, padding]);

    private static bool NeedsPadding(Tensor x, Tensor weight, Tensor? bias) =>
        (weight.shape[0] % Multiple != 0 || weight.shape[1] % Multiple != 0) && CpuKernels.PadConvolutionChannels
        && x.device_type == DeviceType.CPU;

    private static Tensor Padded(Tensor x, Tensor weight, Tensor? bias, long[] stride, long[] padding, long[] dilation, long groups)
    {
        using var scope = NewDisposeScope();
        long outChannels = weight.shape[0];
        var w = weight;
        // Input channels only without groups: a grouped convolution's input channels are per group.
        if (groups == 1 && weight.shape[1] % Multiple != 0)
        {
            long inChannels = weight.shape[1] + Multiple - weight.shape[1] % Multiple;
            x = ZeroPadded(x, 1, inChannels);
            w = ZeroPadded(w, 1, inChannels);
        }
        var b = bias;
        if (outChannels % Multiple != 0)
        {
            long extraOut = Multiple - outChannels % Multiple;
            w = cat([w, zeros([extraOut, .. w.shape[1..]], w.dtype, w.device)], 0);
            b = bias is null ? null : cat([bias, zeros([extraOut], bias.dtype, bias.device)], 0);
        }
        var y = F.conv2d(x, w, b, strides: stride, padding: padding, dilation: dilation, groups: groups);
        // Contiguous, as the module's output is (callers view it).
        return (outChannels % Multiple == 0 ? y : y[.., ..(int)outChannels].contiguous()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <paramref name="t"/> with zeros appended along <paramref name="dim"/> up to <paramref name="size"/>, by index_copy
    /// rather than cat: its gradient is an index_select, a contiguous tensor (cat's would be a strided slice, and a
    /// weight's .grad must be contiguous for the views of the gradient all-reduce and the checks).
    /// </summary>
    private static Tensor ZeroPadded(Tensor t, long dim, long size)
    {
        var shape = t.shape;
        shape[dim] = size;
        using var index = arange(t.shape[dim], dtype: ScalarType.Int64, device: t.device);
        return zeros(shape, t.dtype, t.device).index_copy(dim, index, t);
    }

    /// <summary><paramref name="module"/>(<paramref name="x"/>): through <see cref="Call(Conv2d, Tensor)"/> when it is a Conv2d.</summary>
    public static Tensor Call(nn.Module<Tensor, Tensor> module, Tensor x) => module is Conv2d conv ? Call(conv, x) : module.call(x);
}
