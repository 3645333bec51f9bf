using System.Runtime.CompilerServices;
using Ddpo.Runtime;

namespace Ddpo.Tests.Support;

/// <summary>
/// The test process chooses libtorch's CPU kernels as <c>ddpo</c> does, before its first tensor: on a CPU whose
/// default kernels give wrong gradients (AMD Zen 5, issue 19) the in-process tests then run on the safe kernels, as
/// training would (<c>DDPO_CPU_KERNELS</c> chooses otherwise).
/// </summary>
internal static class TestProcessKernels
{
    [ModuleInitializer]
    internal static void Choose() => CpuKernels.Apply();
}
