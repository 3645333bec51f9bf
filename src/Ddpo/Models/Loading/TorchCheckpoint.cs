using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Loading;

/// <summary>
/// Reads PyTorch checkpoints written by <c>torch.save</c> (the zip format of torch &gt;= 1.6: <c>NAME/data.pkl</c>,
/// <c>NAME/data/KEY</c> storages, <c>NAME/byteorder</c>) with the semantics of
/// <c>torch.load(..., weights_only=True, map_location="cpu")</c>: the pickle is run by a restricted virtual machine
/// (<see cref="TorchCheckpointUnpickler"/>) that builds only tensors and plain containers, and refuses any other
/// global, so nothing in the file is ever executed.
/// </summary>
internal static class TorchCheckpoint
{
    /// <summary>
    /// Loads the state dict of a checkpoint as a flat name → tensor dictionary (on the CPU, contiguous, in the stored
    /// dtype; views that shared a storage in the file are separate copies). See <see cref="TorchCheckpointSelection"/>
    /// for how a nested state dict is found.
    /// </summary>
    public static Dictionary<string, Tensor> Load(string path) => Load(path, out _);

    /// <summary>As <see cref="Load(string)"/>; <paramref name="skipped"/> lists the keys of values that are not tensors (e.g. <c>epoch</c>).</summary>
    public static Dictionary<string, Tensor> Load(string path, out IReadOnlyList<string> skipped)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: checkpoint file not found");
        var skippedKeys = new List<string>();
        try
        {
            CheckFormat(path);
            using var zip = new ZipArchive(File.OpenRead(path), ZipArchiveMode.Read);
            var archive = new Archive(zip, path);
            var root = TorchCheckpointUnpickler.Load(archive.Read(archive.Prefix + "data.pkl"), path, archive.Prefix + "data.pkl", archive.Storage);
            var tensors = TorchCheckpointSelection.Select(root, path, skippedKeys);
            skipped = skippedKeys;
            return Materialize(archive, tensors);
        }
        catch (InvalidDataException e)
        {
            throw new ModelLoadException($"{path}: not a valid torch.save zip archive, truncated or corrupt ({e.Message})", e);
        }
        catch (IOException e)
        {
            throw new ModelLoadException($"{path}: could not read the checkpoint ({e.Message})", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ModelLoadException($"{path}: could not read the checkpoint ({e.Message})", e);
        }
    }

    /// <summary>
    /// Tells the zip format from the legacy one (a bare pickle stream, torch &lt; 1.6 or
    /// <c>_use_new_zipfile_serialization=False</c>) and from files that are no checkpoint at all.
    /// </summary>
    private static void CheckFormat(string path)
    {
        Span<byte> head = stackalloc byte[4];
        using (var stream = File.OpenRead(path))
        {
            int read = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
            head = head[..read];
        }
        if (head.Length >= 2 && head[0] == 0x80 && head[1] <= 5)
        {
            throw new ModelLoadException($"{path}: legacy format: re-save with torch >= 1.6 (torch.save without _use_new_zipfile_serialization=False) to get the zip format this reads");
        }
        if (head.Length < 4 || head[0] != (byte)'P' || head[1] != (byte)'K')
        {
            throw new ModelLoadException($"{path}: not a torch.save checkpoint (expected a zip archive with data.pkl)");
        }
    }

    /// <summary>Builds the tensors storage by storage, so only one storage's bytes are held at a time.</summary>
    private static Dictionary<string, Tensor> Materialize(Archive archive, List<KeyValuePair<string, TorchTensorRef>> tensors)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        CheckViews(archive, tensors);
        try
        {
            foreach (var group in tensors.GroupBy(kv => kv.Value.Storage.Key))
            {
                using var scope = NewDisposeScope();
                var raw = archive.Read(archive.StorageEntry(group.Key));
                var flats = new Dictionary<ScalarType, Tensor>();
                foreach (var (name, reference) in group)
                {
                    if (!flats.TryGetValue(reference.Dtype, out var flat))
                    {
                        flat = Flat(archive, reference, raw);
                        flats[reference.Dtype] = flat;
                    }
                    var tensor = empty(reference.Size, reference.Dtype);
                    if (tensor.numel() > 0) tensor.copy_(flat.as_strided(reference.Size, reference.Stride, reference.Offset));
                    // The names are a dict's keys, so unique.
                    result[name] = tensor.MoveToOuterDisposeScope();
                }
            }
            // Back in the file's order (the loop went storage by storage).
            return tensors.ToDictionary(kv => kv.Key, kv => result[kv.Key], StringComparer.Ordinal);
        }
        catch
        {
            StateDictLoader.DisposeAll(result);
            throw;
        }
    }

    /// <summary>The storage's bytes as a 1-D tensor of the view's dtype, in native (little-endian) order.</summary>
    private static Tensor Flat(Archive archive, TorchTensorRef reference, byte[] raw)
    {
        int size = TorchCheckpointGlobals.ElementSize(reference.Dtype);
        if (raw.Length % size != 0)
        {
            throw new ModelLoadException($"{archive.Path}: storage '{reference.Storage.Key}' has {raw.Length} bytes, not a whole number of {reference.Dtype} elements");
        }
        var bytes = archive.BigEndian ? Swapped(raw, TorchCheckpointGlobals.ScalarSize(reference.Dtype)) : raw;
        var flat = empty(raw.Length / size, reference.Dtype);
        if (bytes.Length > 0) flat.bytes = bytes;
        return flat;
    }

    private static byte[] Swapped(byte[] raw, int scalar)
    {
        var copy = (byte[])raw.Clone();
        if (scalar > 1)
        {
            for (int i = 0; i < copy.Length; i += scalar) Array.Reverse(copy, i, scalar);
        }
        return copy;
    }

    /// <summary>Every view must lie inside its storage: checked before any tensor is built from it.</summary>
    private static void CheckViews(Archive archive, List<KeyValuePair<string, TorchTensorRef>> tensors)
    {
        foreach (var (name, r) in tensors) CheckView(archive.Path, name, r);
    }

    /// <summary>The most elements a view may have beyond those of its storage (a stride-0, expanded view).</summary>
    public const long MaxExpandedElements = 1L << 24;

    /// <summary>Throws unless the strided view <paramref name="r"/> fits its storage.</summary>
    public static void CheckView(string path, string name, TorchTensorRef r)
    {
        long elements = r.Storage.ByteLength / TorchCheckpointGlobals.ElementSize(r.Dtype);
        string View() => $"size [{string.Join(", ", r.Size)}], stride [{string.Join(", ", r.Stride)}], offset {r.Offset}";
        if (r.Offset < 0 || r.Size.Any(s => s < 0) || r.Stride.Any(s => s < 0))
        {
            throw new ModelLoadException($"{path}: tensor '{name}' has a negative size, stride or offset ({View()})");
        }
        try
        {
            long numel = 1;
            long last = r.Offset;
            for (int d = 0; d < r.Size.Length; d++)
            {
                numel = checked(numel * r.Size[d]);
                if (r.Size[d] > 0) last = checked(last + (r.Size[d] - 1) * r.Stride[d]);
            }
            bool fits = numel == 0 ? r.Offset <= elements : last < elements;
            if (!fits)
            {
                throw new ModelLoadException($"{path}: tensor '{name}' ({View()}) does not fit its storage '{r.Storage.Key}' of {elements} {r.Dtype} elements");
            }
            // A view with stride 0 (expand) may have more elements than its storage; it is copied out, so a tiny
            // file could ask for terabytes. Expanded views beyond MaxExpandedElements are refused.
            if (numel > elements && numel > MaxExpandedElements)
            {
                throw new ModelLoadException($"{path}: tensor '{name}' ({View()}) repeats its storage '{r.Storage.Key}' of {elements} elements to {numel}; expanded views over {MaxExpandedElements} elements are not loaded");
            }
        }
        catch (OverflowException)
        {
            throw new ModelLoadException($"{path}: tensor '{name}' ({View()}) is too large");
        }
    }

    /// <summary>The entries of one torch.save archive, found under its single top folder.</summary>
    private sealed class Archive
    {
        private readonly Dictionary<string, ZipArchiveEntry> _entries = new(StringComparer.Ordinal);

        public string Path { get; }
        /// <summary>The archive's folder with a trailing slash (torch names it after the file it saved to).</summary>
        public string Prefix { get; }
        /// <summary>True when <c>byteorder</c> says "big": every scalar's bytes are reversed on load.</summary>
        public bool BigEndian { get; }

        public Archive(ZipArchive zip, string path)
        {
            Path = path;
            foreach (var entry in zip.Entries) _entries[entry.FullName] = entry;
            var pickles = _entries.Keys.Where(n => n.EndsWith("/data.pkl", StringComparison.Ordinal) && n.IndexOf('/') == n.Length - "/data.pkl".Length).ToList();
            if (pickles.Count != 1)
            {
                throw new ModelLoadException(pickles.Count == 0
                    ? $"{path}: missing data.pkl: a zip file, but not a torch.save checkpoint (expected an entry NAME/data.pkl)"
                    : $"{path}: several data.pkl entries ({string.Join(", ", pickles)}), expected one");
            }
            Prefix = pickles[0][..^"data.pkl".Length];
            BigEndian = ReadByteOrder() == "big";
        }

        private string ReadByteOrder()
        {
            // Written since torch 1.11; older archives are little-endian.
            if (!_entries.ContainsKey(Prefix + "byteorder")) return "little";
            var text = Encoding.ASCII.GetString(Read(Prefix + "byteorder")).Trim();
            return text is "little" or "big" ? text : throw new ModelLoadException($"{Path}: {Prefix}byteorder is '{text}', expected 'little' or 'big'");
        }

        public string StorageEntry(string key) => $"{Prefix}data/{key}";

        /// <summary>Reads an entry completely; the entries are STORED, so this is a copy of its bytes.</summary>
        public byte[] Read(string name)
        {
            if (!_entries.TryGetValue(name, out var entry)) throw new ModelLoadException($"{Path}: missing entry '{name}'");
            // torch.save stores every entry uncompressed; refusing compressed ones keeps a small file from
            // declaring gigabytes (a zip bomb) that would be allocated before a byte is checked.
            if (entry.CompressedLength != entry.Length)
            {
                throw new ModelLoadException($"{Path}: entry '{name}' is compressed ({entry.CompressedLength} bytes for {entry.Length}); torch.save writes entries uncompressed (STORED)");
            }
            if (entry.Length > Array.MaxLength) throw new ModelLoadException($"{Path}: entry '{name}' has {entry.Length} bytes; over 2 GB is not supported");
            var bytes = new byte[entry.Length];
            using var stream = entry.Open();
            try
            {
                stream.ReadExactly(bytes);
            }
            catch (EndOfStreamException e)
            {
                throw new ModelLoadException($"{Path}: entry '{name}' is truncated ({e.Message})", e);
            }
            return bytes;
        }

        /// <summary>BINPERSID: a storage record <c>('storage', torch.XStorage, key, location, numel)</c>, checked against its entry.</summary>
        public TorchStorageRef Storage(object? pid)
        {
            if (pid is not PickleTuple { Items: ["storage", PickleGlobal { Kind: TorchGlobalKind.StorageType, Dtype: { } dtype }, string key, string location, long numel] })
            {
                throw new ModelLoadException($"{Path}: a persistent id is {TorchCheckpointUnpickler.Describe(pid)}, expected ('storage', torch.XStorage, key, location, numel)");
            }
            if (key.Length == 0 || key.Contains('/') || key.Contains('\\') || key is "." or "..")
            {
                throw new ModelLoadException($"{Path}: storage key '{key}' is not a plain entry name");
            }
            var entryName = StorageEntry(key);
            if (!_entries.TryGetValue(entryName, out var entry))
            {
                throw new ModelLoadException($"{Path}: storage '{key}' points to the missing entry '{entryName}'");
            }
            long expected = numel < 0 || numel > long.MaxValue / 16 ? -1 : numel * TorchCheckpointGlobals.ElementSize(dtype);
            if (entry.Length != expected)
            {
                throw new ModelLoadException($"{Path}: storage '{key}' is {numel} {dtype} elements, but its entry '{entryName}' has {entry.Length} bytes");
            }
            return new TorchStorageRef(key, dtype, numel, location, entry.Length);
        }
    }
}
