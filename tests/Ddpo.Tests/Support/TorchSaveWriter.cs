using System.IO.Compression;
using System.Text;
using static TorchSharp.torch;

namespace Ddpo.Tests.Support;

/// <summary>
/// Writes a flat state dict in <c>torch.save</c>'s zip layout (protocol-2 pickle of a dict of
/// <c>torch._utils._rebuild_tensor_v2</c> calls on persistent storages, little-endian data files), for tests that need a
/// <c>.pt</c> file of weights made here (no PyTorch on the test machine). Float32 and int64 tensors only.
/// </summary>
public static class TorchSaveWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/>: a plain dict, or with <paramref name="nestUnder"/>
    /// <c>{nestUnder: OrderedDict(tensors)}</c> (the layout of <c>HPS_v2.1_compressed.pt</c>'s <c>state_dict</c>).
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, string? nestUnder = null)
    {
        using var file = File.Create(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
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

        Op(0x80); Op(2); // PROTO 2
        Op((byte)'}');
        if (nestUnder is not null)
        {
            Str(nestUnder);
            Global("collections", "OrderedDict"); Op((byte)')'); Op((byte)'R');
        }
        Op((byte)'(');
        int key = 0;
        foreach (var (name, value) in tensors)
        {
            var t = value.detach().cpu().contiguous();
            var storage = t.dtype switch
            {
                ScalarType.Float32 => "FloatStorage",
                ScalarType.Int64 => "LongStorage",
                _ => throw new ArgumentException($"{name}: only float32 and int64 are written, got {t.dtype}"),
            };
            Str(name);
            Global("torch._utils", "_rebuild_tensor_v2");
            Op((byte)'(');
            Op((byte)'('); Str("storage"); Global("torch", storage); Str(key.ToString()); Str("cpu"); Int(t.numel()); Op((byte)'t');
            Op((byte)'Q'); // BINPERSID
            Int(0);
            Op((byte)'('); foreach (var d in t.shape) Int(d); Op((byte)'t');
            Op((byte)'('); foreach (var s in t.stride()) Int(s); Op((byte)'t');
            Op(0x89); // False: requires_grad
            Global("collections", "OrderedDict"); Op((byte)')'); Op((byte)'R');
            Op((byte)'t');
            Op((byte)'R');
            var data = t.dtype == ScalarType.Float32
                ? t.data<float>().ToArray().SelectMany(BitConverter.GetBytes).ToArray()
                : t.data<long>().ToArray().SelectMany(BitConverter.GetBytes).ToArray();
            Write(zip, $"archive/data/{key}", data);
            key++;
        }
        Op((byte)'u');
        if (nestUnder is not null) Op((byte)'s'); // SETITEM: the outer dict's one entry
        Op((byte)'.');
        Write(zip, "archive/data.pkl", pickle.ToArray());
        Write(zip, "archive/byteorder", Encoding.ASCII.GetBytes("little"));
        Write(zip, "archive/version", Encoding.ASCII.GetBytes("3\n"));
    }

    private static void Write(ZipArchive zip, string name, byte[] data)
    {
        using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        s.Write(data);
    }
}
