using static TorchSharp.torch;

namespace Ddpo.Models.Loading;

/// <summary>
/// The allow-list of pickle globals, a safe subset of what <c>torch.load(..., weights_only=True)</c> accepts:
/// <c>collections.OrderedDict</c>, the tensor and parameter rebuild functions, <c>torch.Size</c>, the typed storage
/// classes and dtype objects, and <c>_codecs.encode</c> (protocol 2's spelling of bytes). Each is interpreted here,
/// never looked up or run; any other name is refused before anything is built from it.
/// </summary>
internal static class TorchCheckpointGlobals
{
    private static readonly Dictionary<string, ScalarType> Storages = new(StringComparer.Ordinal)
    {
        ["DoubleStorage"] = ScalarType.Float64,
        ["FloatStorage"] = ScalarType.Float32,
        ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16,
        ["LongStorage"] = ScalarType.Int64,
        ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16,
        ["CharStorage"] = ScalarType.Int8,
        ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
        ["ComplexFloatStorage"] = ScalarType.ComplexFloat32,
        ["ComplexDoubleStorage"] = ScalarType.ComplexFloat64,
        // torch >= 2.0 writes untyped storages as bytes; the rebuild call then says the dtype.
        ["UntypedStorage"] = ScalarType.Byte,
    };

    private static readonly Dictionary<string, ScalarType> Dtypes = new(StringComparer.Ordinal)
    {
        ["float64"] = ScalarType.Float64, ["double"] = ScalarType.Float64,
        ["float32"] = ScalarType.Float32, ["float"] = ScalarType.Float32,
        ["float16"] = ScalarType.Float16, ["half"] = ScalarType.Float16,
        ["bfloat16"] = ScalarType.BFloat16,
        ["int64"] = ScalarType.Int64, ["long"] = ScalarType.Int64,
        ["int32"] = ScalarType.Int32, ["int"] = ScalarType.Int32,
        ["int16"] = ScalarType.Int16, ["short"] = ScalarType.Int16,
        ["int8"] = ScalarType.Int8,
        ["uint8"] = ScalarType.Byte,
        ["bool"] = ScalarType.Bool,
        ["complex64"] = ScalarType.ComplexFloat32, ["cfloat"] = ScalarType.ComplexFloat32,
        ["complex128"] = ScalarType.ComplexFloat64, ["cdouble"] = ScalarType.ComplexFloat64,
    };

    private static readonly Dictionary<string, TorchGlobalKind> Functions = new(StringComparer.Ordinal)
    {
        ["collections.OrderedDict"] = TorchGlobalKind.OrderedDict,
        ["torch._utils._rebuild_tensor_v2"] = TorchGlobalKind.RebuildTensorV2,
        ["torch._utils._rebuild_tensor_v3"] = TorchGlobalKind.RebuildTensorV3,
        ["torch._utils._rebuild_parameter"] = TorchGlobalKind.RebuildParameter,
        ["torch._utils._rebuild_parameter_with_state"] = TorchGlobalKind.RebuildParameterWithState,
        ["torch.nn.parameter.Parameter"] = TorchGlobalKind.Parameter,
        ["torch.Size"] = TorchGlobalKind.Size,
        ["_codecs.encode"] = TorchGlobalKind.CodecsEncode,
    };

    /// <summary>The allowed global <paramref name="module"/>.<paramref name="name"/>, or null when it is not allowed.</summary>
    public static PickleGlobal? Resolve(string module, string name)
    {
        if (Functions.TryGetValue($"{module}.{name}", out var kind)) return new PickleGlobal(module, name, kind);
        if (module != "torch") return null;
        if (Storages.TryGetValue(name, out var storage)) return new PickleGlobal(module, name, TorchGlobalKind.StorageType, storage);
        if (Dtypes.TryGetValue(name, out var dtype)) return new PickleGlobal(module, name, TorchGlobalKind.Dtype, dtype);
        return null;
    }

    /// <summary>Bytes per element of a dtype a storage can hold.</summary>
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        ScalarType.ComplexFloat64 => 16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a storage dtype"),
    };

    /// <summary>
    /// The size of one scalar for byte order: a complex number is two floats, each swapped on its own.
    /// </summary>
    public static int ScalarSize(ScalarType dtype) => dtype switch
    {
        ScalarType.ComplexFloat32 => 4,
        ScalarType.ComplexFloat64 => 8,
        _ => ElementSize(dtype),
    };
}
