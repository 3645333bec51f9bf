using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>
/// Writes float32 tensors the way <c>torch.save({"state_dict": sd}, path)</c> lays them out (zip of STORED entries:
/// <c>archive/data.pkl</c> protocol-2 pickle of <c>_rebuild_tensor_v2</c> calls, <c>archive/data/KEY</c> storages,
/// <c>archive/byteorder</c>), so the restricted unpickler can be tested on a checkpoint with the HPS file's nesting
/// without PyTorch. Only what the tests need: contiguous float32 tensors, one storage each.
/// </summary>
internal static class TorchSaveWriter
{
    public static void WriteNested(string path, IReadOnlyDictionary<string, Tensor> stateDict, string outerKey = "state_dict")
    {
        var pickle = new MemoryStream();
        void Op(byte b) => pickle.WriteByte(b);
        void Str(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            Op((byte)'X');
            pickle.Write(BitConverter.GetBytes(bytes.Length));
            pickle.Write(bytes);
        }
        void Int(long v)
        {
            Op((byte)'J');
            pickle.Write(BitConverter.GetBytes(checked((int)v)));
        }
        void Global(string module, string name) => pickle.Write(Encoding.ASCII.GetBytes($"c{module}\n{name}\n"));
        void IntTuple(long[] values)
        {
            if (values.Length == 0) { Op((byte)')'); return; }
            Op((byte)'(');
            foreach (var v in values) Int(v);
            Op((byte)'t');
        }

        Op(0x80); Op(2);                 // PROTO 2
        Op((byte)'}');                   // outer dict
        Str(outerKey);
        Global("collections", "OrderedDict"); Op((byte)')'); Op((byte)'R');
        Op((byte)'(');
        var storages = new List<(string Key, byte[] Bytes)>();
        foreach (var (name, t) in stateDict)
        {
            var data = t.to(ScalarType.Float32).contiguous().cpu();
            var bytes = data.data<float>().ToArray().SelectMany(BitConverter.GetBytes).ToArray();
            string key = storages.Count.ToString();
            storages.Add((key, bytes));
            var shape = data.shape;
            var strides = new long[shape.Length];
            for (int i = shape.Length - 1, s = 1; i >= 0; i--) { strides[i] = s; s *= (int)shape[i]; }
            Str(name);
            Global("torch._utils", "_rebuild_tensor_v2");
            Op((byte)'(');
            Op((byte)'('); Str("storage"); Global("torch", "FloatStorage"); Str(key); Str("cpu"); Int(data.numel()); Op((byte)'t');
            Op((byte)'Q');               // BINPERSID
            Int(0);                      // storage offset
            IntTuple(shape);
            IntTuple(strides);
            Op(0x89);                    // requires_grad = False
            Global("collections", "OrderedDict"); Op((byte)')'); Op((byte)'R');
            Op((byte)'t');
            Op((byte)'R');
        }
        Op((byte)'u');                   // SETITEMS into the OrderedDict
        Op((byte)'s');                   // outer[outerKey] = OrderedDict
        Op((byte)'.');

        File.Delete(path);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        void Entry(string name, byte[] bytes)
        {
            using var s = zip.CreateEntry("archive/" + name, CompressionLevel.NoCompression).Open();
            s.Write(bytes);
        }
        Entry("data.pkl", pickle.ToArray());
        Entry("byteorder", Encoding.ASCII.GetBytes("little"));
        foreach (var (key, bytes) in storages) Entry("data/" + key, bytes);
        Entry("version", Encoding.ASCII.GetBytes("3\n"));
    }
}
