using System.Text;

namespace Ddpo.Runtime;

/// <summary>
/// Writes files and folders so that a reader (or a run killed mid-write) never sees a half-written one under the final
/// name: the content goes to a hidden temporary file or folder beside it, which is then renamed into place (a rename
/// within one file system is atomic). The temporary is removed if writing fails.
/// </summary>
internal static class AtomicFile
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
        var temp = TemporaryBeside(full);
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

    /// <summary>
    /// Calls <paramref name="writeTemporary"/> with a fresh, empty temporary folder beside <paramref name="directory"/>,
    /// then renames it to <paramref name="directory"/>. A folder already there is replaced: moved aside under a
    /// temporary name, then deleted, so that a crash in between leaves the old or the new folder, never a mix.
    /// </summary>
    public static void WriteFolder(string directory, Action<string> writeTemporary)
    {
        ArgumentNullException.ThrowIfNull(writeTemporary);
        var full = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = TemporaryBeside(full);
        Directory.CreateDirectory(temp);
        try
        {
            writeTemporary(temp);
            if (Directory.Exists(full))
            {
                var old = TemporaryBeside(full);
                Directory.Move(full, old);
                Directory.Move(temp, full);
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(temp, full);
            }
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>True for the name of a temporary file or folder of this class (one a killed process left behind).</summary>
    public static bool IsTemporary(string name) => name.StartsWith('.') && name.EndsWith(".tmp", StringComparison.Ordinal);

    private static string TemporaryBeside(string full) =>
        Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");

    /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte-order mark.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, temp => File.WriteAllText(temp, text, new UTF8Encoding(false)));

    /// <summary>Writes <paramref name="bytes"/>.</summary>
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, temp => File.WriteAllBytes(temp, bytes));

    /// <summary>Writes <paramref name="lines"/>, each followed by a newline, as UTF-8 without a byte-order mark.</summary>
    public static void WriteAllLines(string path, IEnumerable<string> lines) => Write(path, temp => File.WriteAllLines(temp, lines));
}
