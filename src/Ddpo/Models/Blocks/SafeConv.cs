using Ddpo.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Blocks;

/// <summary>
/// Every Conv2d of the UNet and VAE families runs through here. With the safe CPU kernels oneDNN computes the
/// convolutions, and on AMD Zen 5 its backward-data kernel is wrong (from run to run) at batch >= 2 when the output
/// channels are not a multiple of 8 (docs/cpu-gradients.md): a convolution that will take a gradient then runs with
/// zero filters appended up to the next multiple of 8, and the extra channels are cut off. The output and every
/// gradient are the same (the extra outputs are dropped, so no gradient flows through them); only the kernel oneDNN
/// picks changes. Elsewhere (other profiles, CUDA, no gradient, channels already a multiple of 8) it is the module's call.
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
        weight.shape[0] % Multiple != 0 && CpuKernels.PadConvolutionChannels && x.device_type == DeviceType.CPU
        && is_grad_enabled() && (x.requires_grad || weight.requires_grad || bias is { requires_grad: true });

    private static Tensor Padded(Tensor x, Tensor weight, Tensor? bias, long[] stride, long[] padding, long[] dilation, long groups)
    {
        using var scope = NewDisposeScope();
        long outChannels = weight.shape[0], extra = Multiple - outChannels % Multiple;
        var w = cat([weight, zeros([extra, .. weight.shape[1..]], weight.dtype, weight.device)], 0);
        var b = bias is null ? null : cat([bias, zeros([extra], bias.dtype, bias.device)], 0);
        var y = F.conv2d(x, w, b, strides: stride, padding: padding, dilation: dilation, groups: groups);
        return y[.., ..(int)outChannels].MoveToOuterDisposeScope();
    }

    /// <summary><paramref name="module"/>(<paramref name="x"/>): through <see cref="Call(Conv2d, Tensor)"/> when it is a Conv2d.</summary>
    public static Tensor Call(nn.Module<Tensor, Tensor> module, Tensor x) => module is Conv2d conv ? Call(conv, x) : module.call(x);
}
