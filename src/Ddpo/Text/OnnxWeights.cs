using System.Text;
using Ddpo.Models.Loading;
using static TorchSharp.torch;

namespace Ddpo.Text;

/// <summary>
/// Reads the weights (graph initializers) of an ONNX model exported from a PyTorch BERT by a minimal
/// protobuf reader, and gives them transformers' names: named initializers keep theirs, and the
/// anonymous weight of each <c>MatMul</c> takes the name of the bias its output is added to
/// (<c>….query.bias</c> → <c>….query.weight</c>, transposed from ONNX's [in, out] to PyTorch's [out, in]).
/// Only float32 and int64 tensors stored inline are supported.
/// </summary>
internal static class OnnxWeights
{
    private sealed record Node(string OpType, List<string> Inputs, List<string> Outputs);

    /// <summary>The transformers-named state dict of an ONNX BERT; the caller disposes the tensors.</summary>
    public static Dictionary<string, Tensor> ReadBertStateDict(byte[] model, string source)
    {
        var initializers = new Dictionary<string, Tensor>();
        var nodes = new List<Node>();
        try
        {
            foreach (var (field, start, length) in Messages(model, 0, model.Length, source))
            {
                if (field != 7) continue; // ModelProto.graph
                foreach (var (gf, gs, gl) in Messages(model, start, start + length, source))
                {
                    if (gf == 5) // GraphProto.initializer
                    {
                        var (name, tensor) = ReadTensor(model, gs, gs + gl, source);
                        initializers[name] = tensor;
                    }
                    else if (gf == 1) // GraphProto.node
                    {
                        nodes.Add(ReadNode(model, gs, gs + gl, source));
                    }
                }
            }
            return Rename(initializers, nodes, source);
        }
        finally
        {
            foreach (var t in initializers.Values) t.Dispose();
        }
    }

    private static Dictionary<string, Tensor> Rename(Dictionary<string, Tensor> initializers, List<Node> nodes, string source)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, t) in initializers)
        {
            if (name.StartsWith("embeddings.", StringComparison.Ordinal) || name.StartsWith("encoder.", StringComparison.Ordinal))
            {
                result[name] = t.clone();
            }
        }
        var addByInput = new Dictionary<string, Node>();
        foreach (var n in nodes.Where(n => n.OpType == "Add"))
        {
            foreach (var i in n.Inputs) addByInput.TryAdd(i, n);
        }
        foreach (var n in nodes.Where(n => n.OpType == "MatMul" && n.Inputs.Count == 2 && initializers.ContainsKey(n.Inputs[1])))
        {
            var weight = initializers[n.Inputs[1]];
            if (!addByInput.TryGetValue(n.Outputs[0], out var add)) continue;
            var bias = add.Inputs.FirstOrDefault(i => i.EndsWith(".bias", StringComparison.Ordinal) && initializers.ContainsKey(i));
            if (bias is null || weight.dim() != 2) continue;
            var name = bias[..^".bias".Length] + ".weight";
            if (result.ContainsKey(name))
            {
                throw new ModelLoadException($"{source}: two MatMul weights map to '{name}'");
            }
            result[name] = weight.t().contiguous().clone();
        }
        return result;
    }

    private static Node ReadNode(byte[] b, int start, int end, string source)
    {
        var node = new Node("", [], []);
        string op = "";
        foreach (var (f, s, l) in Messages(b, start, end, source))
        {
            if (f == 1) node.Inputs.Add(Encoding.UTF8.GetString(b, s, l));
            else if (f == 2) node.Outputs.Add(Encoding.UTF8.GetString(b, s, l));
            else if (f == 4) op = Encoding.UTF8.GetString(b, s, l);
        }
        return node with { OpType = op };
    }

    private static (string Name, Tensor Tensor) ReadTensor(byte[] b, int start, int end, string source)
    {
        var dims = new List<long>();
        int dataType = 0;
        string name = "";
        int rawStart = -1, rawLength = 0, floatStart = -1, floatLength = 0;
        int p = start;
        while (p < end)
        {
            var key = Varint(b, ref p, source);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (field, wire)
            {
                case (1, 0): dims.Add((long)Varint(b, ref p, source)); break;
                case (1, 2):
                    {
                        int l = (int)Varint(b, ref p, source), e = p + l;
                        while (p < e) dims.Add((long)Varint(b, ref p, source));
                        break;
                    }
                case (2, 0): dataType = (int)Varint(b, ref p, source); break;
                case (8, 2): { int l = (int)Varint(b, ref p, source); name = Encoding.UTF8.GetString(b, p, l); p += l; break; }
                case (9, 2): { rawLength = (int)Varint(b, ref p, source); rawStart = p; p += rawLength; break; }
                case (4, 2): { floatLength = (int)Varint(b, ref p, source); floatStart = p; p += floatLength; break; }
                case (14, 2): throw new ModelLoadException($"{source}: tensor '{name}' uses external data, which is not supported");
                default: Skip(b, ref p, wire, source); break;
            }
        }
        var shape = dims.ToArray();
        long count = shape.Aggregate(1L, (a, d) => a * d);
        int offset = rawStart >= 0 ? rawStart : floatStart;
        int length = rawStart >= 0 ? rawLength : floatLength;
        switch (dataType)
        {
            case 1:
                {
                    if (length != count * 4) throw new ModelLoadException($"{source}: tensor '{name}' has {length} bytes for {count} float32 values");
                    var values = new float[count];
                    Buffer.BlockCopy(b, offset, values, 0, length);
                    return (name, tensor(values, shape));
                }
            case 7:
                {
                    if (rawStart < 0 || length != count * 8) throw new ModelLoadException($"{source}: tensor '{name}' int64 data is not stored as raw bytes");
                    var values = new long[count];
                    Buffer.BlockCopy(b, offset, values, 0, length);
                    return (name, tensor(values, shape));
                }
            default:
                throw new ModelLoadException($"{source}: tensor '{name}' has ONNX data type {dataType} (only float32 and int64 are supported)");
        }
    }

    /// <summary>The length-delimited fields of a message (field number, payload start, payload length); other wire types are skipped.</summary>
    private static IEnumerable<(int Field, int Start, int Length)> Messages(byte[] b, int start, int end, string source)
    {
        int p = start;
        while (p < end)
        {
            var key = Varint(b, ref p, source);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            if (wire == 2)
            {
                int l = (int)Varint(b, ref p, source);
                if (l < 0 || p + l > end) throw new ModelLoadException($"{source}: truncated protobuf field {field}");
                yield return (field, p, l);
                p += l;
            }
            else
            {
                Skip(b, ref p, wire, source);
            }
        }
    }

    private static void Skip(byte[] b, ref int p, int wire, string source)
    {
        switch (wire)
        {
            case 0: Varint(b, ref p, source); break;
            case 1: p += 8; break;
            case 2: { int l = (int)Varint(b, ref p, source); p += l; break; }
            case 5: p += 4; break;
            default: throw new ModelLoadException($"{source}: not an ONNX protobuf (wire type {wire})");
        }
    }

    private static ulong Varint(byte[] b, ref int p, string source)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (p >= b.Length) throw new ModelLoadException($"{source}: truncated protobuf");
            byte x = b[p++];
            result |= (ulong)(x & 0x7f) << shift;
            if ((x & 0x80) == 0) return result;
        }
        throw new ModelLoadException($"{source}: malformed protobuf varint");
    }
}
