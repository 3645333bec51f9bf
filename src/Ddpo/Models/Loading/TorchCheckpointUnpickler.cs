using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using static TorchSharp.torch;

namespace Ddpo.Models.Loading;

/// <summary>
/// A restricted pickle virtual machine for <c>data.pkl</c> of a <c>torch.save</c> archive. It builds only plain
/// values (None, bools, ints, floats, strings, bytes, tuples, lists, dicts) and the records of
/// <see cref="TorchCheckpointGlobals"/>; a GLOBAL outside that allow-list is refused when it is read, so nothing
/// named by the file is ever imported, called or instantiated. Protocols 2 to 4 (the opcodes <c>torch.save</c> and
/// <c>pickle</c> emit for these values) are read; anything else is an error naming the opcode and its offset.
/// </summary>
internal sealed class TorchCheckpointUnpickler
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] _data;
    private readonly string _path;
    private readonly string _entry;
    private readonly Func<object?, TorchStorageRef> _persistentLoad;
    private readonly List<object?> _stack = [];
    private readonly List<int> _marks = [];
    private readonly Dictionary<long, object?> _memo = [];
    private int _pos;

    private TorchCheckpointUnpickler(byte[] data, string path, string entry, Func<object?, TorchStorageRef> persistentLoad)
    {
        _data = data;
        _path = path;
        _entry = entry;
        _persistentLoad = persistentLoad;
    }

    /// <summary>
    /// Runs the pickle in <paramref name="data"/> (the archive entry <paramref name="entry"/> of <paramref name="path"/>)
    /// and returns its value. <paramref name="persistentLoad"/> turns each BINPERSID id into a storage record.
    /// </summary>
    public static object? Load(byte[] data, string path, string entry, Func<object?, TorchStorageRef> persistentLoad) =>
        new TorchCheckpointUnpickler(data, path, entry, persistentLoad).Run();

    /// <summary>The error for a global the allow-list does not hold: the message the user sees for a malicious file.</summary>
    public static ModelLoadException Refused(string path, string module, string name)
    {
        // torch.save(model) pickles the module's classes: the usual honest reason for a refused global.
        var hint = module.StartsWith("torch.nn.modules", StringComparison.Ordinal)
            ? " (a whole torch.nn.Module was saved: re-save model.state_dict() with torch.save)"
            : "";
        return new($"{path}: refuses to load '{module}.{name}': only tensors, dicts, lists and numbers are read (torch.load weights_only=True); nothing in the file is executed{hint}");
    }

    private object? Run()
    {
        while (true)
        {
            int at = _pos;
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    int protocol = ReadByte();
                    if (protocol > 5) throw Corrupt(at, $"pickle protocol {protocol} is not supported (at most 5)");
                    break;
                case 0x95: // FRAME: a length prefix that only helps buffered readers
                    Take(8);
                    break;
                case (byte)'.': // STOP
                    return Pop(at);
                case (byte)'(': // MARK
                    _marks.Add(_stack.Count);
                    break;
                case (byte)'0': // POP
                    Pop(at);
                    break;
                case (byte)'1': // POP_MARK
                    PopMark(at);
                    break;
                case (byte)'2': // DUP
                    _stack.Add(Peek(at));
                    break;
                case (byte)'N':
                    _stack.Add(null);
                    break;
                case 0x88: // NEWTRUE
                    _stack.Add(true);
                    break;
                case 0x89: // NEWFALSE
                    _stack.Add(false);
                    break;
                case (byte)'J': // BININT
                    _stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4)));
                    break;
                case (byte)'K': // BININT1
                    _stack.Add((long)ReadByte());
                    break;
                case (byte)'M': // BININT2
                    _stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2)));
                    break;
                case 0x8a: // LONG1
                    _stack.Add(ReadLong(ReadByte()));
                    break;
                case 0x8b: // LONG4
                    _stack.Add(ReadLong(ReadLength(4, at)));
                    break;
                case (byte)'G': // BINFLOAT: big-endian, unlike the integers
                    _stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Take(8)));
                    break;
                case (byte)'X': // BINUNICODE
                    _stack.Add(ReadUtf8(ReadLength(4, at), at));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    _stack.Add(ReadUtf8(ReadByte(), at));
                    break;
                case 0x8d: // BINUNICODE8
                    _stack.Add(ReadUtf8(ReadLength(8, at), at));
                    break;
                case (byte)'B': // BINBYTES
                    _stack.Add(Take(ReadLength(4, at)).ToArray());
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    _stack.Add(Take(ReadByte()).ToArray());
                    break;
                case 0x8e: // BINBYTES8
                    _stack.Add(Take(ReadLength(8, at)).ToArray());
                    break;
                case (byte)'}': // EMPTY_DICT
                    _stack.Add(new PickleDict());
                    break;
                case (byte)']': // EMPTY_LIST
                    _stack.Add(new PickleList());
                    break;
                case (byte)')': // EMPTY_TUPLE
                    _stack.Add(new PickleTuple([]));
                    break;
                case 0x85: // TUPLE1
                case 0x86: // TUPLE2
                case 0x87: // TUPLE3
                    int count = op - 0x84;
                    if (_stack.Count - CurrentFloor() < count) throw Corrupt(at, $"TUPLE{count} needs {count} values on the stack");
                    var items = _stack.GetRange(_stack.Count - count, count).ToArray();
                    _stack.RemoveRange(_stack.Count - count, count);
                    _stack.Add(new PickleTuple(items));
                    break;
                case (byte)'t': // TUPLE
                    _stack.Add(new PickleTuple(PopMark(at).ToArray()));
                    break;
                case (byte)'l': // LIST
                    var list = new PickleList();
                    list.AddRange(PopMark(at));
                    _stack.Add(list);
                    break;
                case (byte)'d': // DICT
                    var dict = new PickleDict();
                    SetItems(dict, PopMark(at), at);
                    _stack.Add(dict);
                    break;
                case (byte)'s': // SETITEM
                    var value = Pop(at);
                    var key = Pop(at);
                    SetItems(Peek<PickleDict>(at, "SETITEM"), [key, value], at);
                    break;
                case (byte)'u': // SETITEMS
                    var pairs = PopMark(at);
                    SetItems(Peek<PickleDict>(at, "SETITEMS"), pairs, at);
                    break;
                case (byte)'a': // APPEND
                    var item = Pop(at);
                    Peek<PickleList>(at, "APPEND").Add(item);
                    break;
                case (byte)'e': // APPENDS
                    var appended = PopMark(at);
                    Peek<PickleList>(at, "APPENDS").AddRange(appended);
                    break;
                case (byte)'q': // BINPUT
                    _memo[ReadByte()] = Peek(at);
                    break;
                case (byte)'r': // LONG_BINPUT
                    _memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek(at);
                    break;
                case 0x94: // MEMOIZE
                    _memo[_memo.Count] = Peek(at);
                    break;
                case (byte)'h': // BINGET
                    _stack.Add(Memo(ReadByte(), at));
                    break;
                case (byte)'j': // LONG_BINGET
                    _stack.Add(Memo(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)), at));
                    break;
                case (byte)'c': // GLOBAL: "module\nname\n"
                    string module = ReadLine(at);
                    string name = ReadLine(at);
                    _stack.Add(Global(module, name));
                    break;
                case 0x93: // STACK_GLOBAL
                    var globalName = Pop(at);
                    var globalModule = Pop(at);
                    if (globalModule is not string m || globalName is not string n) throw Corrupt(at, "STACK_GLOBAL needs two strings");
                    _stack.Add(Global(m, n));
                    break;
                case (byte)'R': // REDUCE
                    var args = Pop(at);
                    var function = Pop(at);
                    _stack.Add(Call(function, args, at, "REDUCE"));
                    break;
                case 0x81: // NEWOBJ: cls.__new__(cls, *args); OrderedDict and Parameter are the only classes here
                    var newArgs = Pop(at);
                    var cls = Pop(at);
                    if (cls is not PickleGlobal { Kind: TorchGlobalKind.OrderedDict or TorchGlobalKind.Parameter }) throw Corrupt(at, $"NEWOBJ of {Describe(cls)}, only collections.OrderedDict and torch.nn.Parameter can be created");
                    _stack.Add(Call(cls, newArgs, at, "NEWOBJ"));
                    break;
                case (byte)'b': // BUILD
                    Build(Pop(at), Peek(at), at);
                    break;
                case (byte)'Q': // BINPERSID: a storage record
                    _stack.Add(_persistentLoad(Pop(at)));
                    break;
                default:
                    throw Corrupt(at, $"unsupported pickle opcode 0x{op:x2}{Printable(op)} (a torch.save checkpoint holds only tensors, dicts, lists and numbers)");
            }
        }
    }

    private static string Printable(byte op) => op is >= 0x21 and < 0x7f ? $" ('{(char)op}')" : "";

    /// <summary>Refused when read, as weights_only does: a name outside the allow-list is never even held.</summary>
    private PickleGlobal Global(string module, string name) =>
        TorchCheckpointGlobals.Resolve(module, name) ?? throw Refused(_path, module, name);

    private object? Call(object? function, object? args, int at, string op)
    {
        if (function is not PickleGlobal global) throw Corrupt(at, $"{op} calls {Describe(function)}, not an allowed function");
        if (args is not PickleTuple tuple) throw Corrupt(at, $"{op} of {global.FullName}: the arguments are {Describe(args)}, expected a tuple");
        var a = tuple.Items;
        switch (global.Kind)
        {
            case TorchGlobalKind.OrderedDict when a.Length == 0:
                return new PickleDict();
            case TorchGlobalKind.RebuildTensorV2 when a.Length is 6 or 7:
                return Tensor(global, a, a[0] as TorchStorageRef is { } s ? s.Dtype : default, at);
            case TorchGlobalKind.RebuildTensorV3 when a.Length is 7 or 8:
                if (a[6] is not PickleGlobal { Kind: TorchGlobalKind.Dtype, Dtype: { } dtype }) throw Corrupt(at, $"{global.FullName}: argument 7 is {Describe(a[6])}, expected a torch dtype");
                return Tensor(global, a, dtype, at);
            case TorchGlobalKind.RebuildParameter when a.Length == 3:
            case TorchGlobalKind.RebuildParameterWithState when a.Length == 4:
            case TorchGlobalKind.Parameter when a.Length is 1 or 2:
                return a[0] as TorchTensorRef ?? throw Corrupt(at, $"{global.FullName}: argument 1 is {Describe(a[0])}, expected a tensor");
            case TorchGlobalKind.Size when a.Length == 0:
                return new PickleTuple([]);
            case TorchGlobalKind.Size when a.Length == 1 && a[0] is PickleTuple size:
                return size;
            case TorchGlobalKind.CodecsEncode when a.Length == 2 && a[0] is string chars && a[1] is "latin1" or "latin-1":
                // Protocol 2 writes bytes as _codecs.encode(str, 'latin1'): each char is one byte.
                if (chars.Any(c => c > 0xff)) throw Corrupt(at, "_codecs.encode: a latin1 string holds a character above U+00FF");
                return Encoding.Latin1.GetBytes(chars);
            default:
                throw Corrupt(at, $"{op} of {global.FullName} with {a.Length} argument(s) ({string.Join(", ", a.Select(Describe))}) is not supported");
        }
    }

    private TorchTensorRef Tensor(PickleGlobal global, object?[] a, ScalarType dtype, int at)
    {
        if (a[0] is not TorchStorageRef storage) throw Corrupt(at, $"{global.FullName}: argument 1 is {Describe(a[0])}, expected a storage");
        if (a[1] is not long offset) throw Corrupt(at, $"{global.FullName}: the storage offset is {Describe(a[1])}, expected an int");
        var size = Longs(a[2], global, "size", at);
        var stride = Longs(a[3], global, "stride", at);
        if (size.Length != stride.Length) throw Corrupt(at, $"{global.FullName}: size has {size.Length} dimensions, stride {stride.Length}");
        return new TorchTensorRef(storage, dtype, offset, size, stride);
    }

    private long[] Longs(object? value, PickleGlobal global, string what, int at)
    {
        if (value is PickleTuple { Items: var items } && items.All(i => i is long)) return items.Select(i => (long)i!).ToArray();
        throw Corrupt(at, $"{global.FullName}: the {what} is {Describe(value)}, expected a tuple of ints");
    }

    private void Build(object? state, object? instance, int at)
    {
        // OrderedDict's state is its __dict__ (a state dict's _metadata of module versions): not part of the items.
        if (instance is PickleDict && state is PickleDict or null) return;
        throw Corrupt(at, $"BUILD of {Describe(instance)} with {Describe(state)} is not supported (only a dict's attributes are read, and ignored)");
    }

    private void SetItems(PickleDict dict, List<object?> items, int at)
    {
        if (items.Count % 2 != 0) throw Corrupt(at, "a dict needs key/value pairs, got an odd number of values");
        for (int i = 0; i < items.Count; i += 2)
        {
            var key = items[i];
            if (key is PickleList or PickleDict) throw Corrupt(at, $"a dict key is {Describe(key)}, which Python cannot hash");
            dict.Set(key, items[i + 1]);
        }
    }

    private object? Memo(long index, int at) =>
        _memo.TryGetValue(index, out var value) ? value : throw Corrupt(at, $"memo entry {index} is read before it is written");

    private int CurrentFloor() => _marks.Count == 0 ? 0 : _marks[^1];

    private object? Pop(int at)
    {
        if (_stack.Count <= CurrentFloor()) throw Corrupt(at, "the pickle stack is empty");
        var value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object? Peek(int at) =>
        _stack.Count > CurrentFloor() ? _stack[^1] : throw Corrupt(at, "the pickle stack is empty");

    private T Peek<T>(int at, string op) where T : class =>
        Peek(at) as T ?? throw Corrupt(at, $"{op} on {Describe(Peek(at))}");

    private List<object?> PopMark(int at)
    {
        if (_marks.Count == 0) throw Corrupt(at, "no MARK on the pickle stack");
        int from = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(from, _stack.Count - from);
        _stack.RemoveRange(from, _stack.Count - from);
        return items;
    }

    private byte ReadByte() => Take(1)[0];

    private ReadOnlySpan<byte> Take(long count)
    {
        if (count < 0 || count > _data.Length - _pos) throw Corrupt(_pos, $"truncated: {count} more bytes needed, {_data.Length - _pos} left");
        var span = _data.AsSpan(_pos, (int)count);
        _pos += (int)count;
        return span;
    }

    private long ReadLength(int bytes, int at)
    {
        long length = bytes == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(Take(4)) : BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        if (length < 0 || length > _data.Length - _pos) throw Corrupt(at, $"truncated: a length of {length} bytes, {_data.Length - _pos} left");
        return length;
    }

    /// <summary>LONG1/LONG4: little-endian two's complement; a long when it fits, else a BigInteger.</summary>
    private object ReadLong(long count)
    {
        var bytes = Take(count);
        var value = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (object)(long)value : value;
    }

    private string ReadUtf8(long count, int at)
    {
        var bytes = Take(count);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Corrupt(at, "a string is not valid UTF-8");
        }
    }

    private string ReadLine(int at)
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0) throw Corrupt(at, "truncated: GLOBAL without its newline");
        // Module and class names are ASCII identifiers in any pickle Python writes.
        var line = _data.AsSpan(_pos, end - _pos);
        foreach (var b in line)
        {
            if (b is < 0x20 or >= 0x7f) throw Corrupt(at, "a GLOBAL name is not printable ASCII");
        }
        _pos = end + 1;
        return Encoding.ASCII.GetString(line);
    }

    /// <summary>A short description of a pickle value for error messages.</summary>
    public static string Describe(object? value) => value switch
    {
        null => "None",
        bool => "a bool",
        long or BigInteger => "an int",
        double => "a float",
        string => "a string",
        byte[] => "bytes",
        PickleTuple t => $"a tuple of {t.Items.Length}",
        PickleList l => $"a list of {l.Count}",
        PickleDict d => $"a dict of {d.Items.Count}",
        TorchTensorRef => "a tensor",
        TorchStorageRef => "a storage",
        PickleGlobal g => $"'{g.FullName}'",
        _ => value.GetType().Name,
    };

    private ModelLoadException Corrupt(int at, string problem) =>
        new($"{_path}: {_entry} is not a valid checkpoint pickle at byte {at}: {problem}");
}
