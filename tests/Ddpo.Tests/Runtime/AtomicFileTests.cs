using Ddpo.Runtime;
using Xunit;

namespace Ddpo.Tests.Runtime;

/// <summary>The one helper behind every atomic write: files and whole folders appear complete or not at all.</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("ddpo-atomic-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void FileIsReplacedAndNoTemporaryRemains()
    {
        var path = Path.Combine(_dir.FullName, "sub", "a.txt");
        AtomicFile.WriteAllText(path, "one");
        AtomicFile.WriteAllText(path, "two");
        Assert.Equal("two", File.ReadAllText(path));
        Assert.Equal(["a.txt"], Directory.GetFileSystemEntries(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
    }

    [Fact]
    public void FolderIsWrittenThenReplacedWhole()
    {
        var folder = Path.Combine(_dir.FullName, "epoch-000001");
        AtomicFile.WriteFolder(folder, temp =>
        {
            Assert.False(Directory.Exists(folder));
            Assert.True(AtomicFile.IsTemporary(Path.GetFileName(temp)));
            File.WriteAllText(Path.Combine(temp, "old.txt"), "1");
        });
        AtomicFile.WriteFolder(folder, temp =>
        {
            Assert.True(File.Exists(Path.Combine(folder, "old.txt")), "the old folder stays readable while the new one is written");
            File.WriteAllText(Path.Combine(temp, "new.txt"), "2");
        });
        Assert.Equal(["new.txt"], Directory.GetFiles(folder).Select(Path.GetFileName));
        Assert.Equal(["epoch-000001"], Directory.GetFileSystemEntries(_dir.FullName).Select(Path.GetFileName));
    }

    [Fact]
    public void FailedFolderWriteKeepsTheOldFolderAndLeavesNoTemporary()
    {
        var folder = Path.Combine(_dir.FullName, "images");
        AtomicFile.WriteFolder(folder, temp => File.WriteAllText(Path.Combine(temp, "grid.png"), "old"));
        var error = Assert.Throws<IOException>(() => AtomicFile.WriteFolder(folder, temp =>
        {
            File.WriteAllText(Path.Combine(temp, "grid.png"), "half");
            throw new IOException("disk full");
        }));
        Assert.Equal("disk full", error.Message);
        Assert.Equal("old", File.ReadAllText(Path.Combine(folder, "grid.png")));
        Assert.Equal(["images"], Directory.GetFileSystemEntries(_dir.FullName).Select(Path.GetFileName));
        Assert.False(AtomicFile.IsTemporary("images"));
    }
}
