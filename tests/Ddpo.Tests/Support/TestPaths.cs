namespace Ddpo.Tests.Support;

/// <summary>Locates the project's committed fixtures and the optional read-only <c>../shared</c> folder.</summary>
public static class TestPaths
{
    /// <summary>The repository root (the folder holding Ddpo.sln).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>Fixtures committed in the project (generated for us, safe to ship).</summary>
    public static string Fixtures => Path.Combine(RepoRoot, "tests", "Ddpo.Tests", "Fixtures");

    /// <summary>A committed fixture path.</summary>
    public static string Fixture(params string[] parts) => Path.Combine([Fixtures, .. parts]);

    /// <summary>The shared folder beside the checkout, or null where it is absent (third-party data lives there).</summary>
    public static string? Shared
    {
        get
        {
            var p = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "fixtures"));
            return Directory.Exists(p) ? p : null;
        }
    }

    /// <summary>A fresh temporary folder, deleted by the caller (or left for inspection on failure).</summary>
    public static string NewTempDir(string prefix = "ddpo-test")
    {
        var dir = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Ddpo.sln")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("Ddpo.sln not found above " + AppContext.BaseDirectory);
    }
}
