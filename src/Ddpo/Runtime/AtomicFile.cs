using System.Text;

namespace Ddpo.Runtime;

/// <summary>
/// Writes files so that a reader (or a run killed mid-write) never sees a half-written file under the final name:
/// the content goes to a hidden temporary file in the same folder, which is then renamed over the destination
/// (a rename within one file system is atomic). The temporary file is removed if writing fails.
/// </summary>
public static class AtomicFile
{
    /// <summary>
    /// Calls <paramref name="writeTemporary"/> with the path of a fresh temporary file beside <paramref name="path"/>
    /// (creating the folder), then renames that file over <paramref name="path"/>.
    /// </summary>
    public static void Write(string path, Action<string> writeTemporary)
    {
        ArgumentNullException.ThrowIfNull(writeTemporary);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            writeTemporary(temp);
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte-order mark.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, temp => File.WriteAllText(temp, text, new UTF8Encoding(false)));

    /// <summary>Writes <paramref name="bytes"/>.</summary>
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, temp => File.WriteAllBytes(temp, bytes));

    /// <summary>Writes <paramref name="lines"/>, each followed by a newline, as UTF-8 without a byte-order mark.</summary>
    public static void WriteAllLines(string path, IEnumerable<string> lines) => Write(path, temp => File.WriteAllLines(temp, lines));
}
