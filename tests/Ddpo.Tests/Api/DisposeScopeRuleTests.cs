using System.Text;
using System.Text.RegularExpressions;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Api;

/// <summary>
/// No TorchSharp dispose scope is open across an <c>await</c>, in the product or the tests. Scopes belong to a thread:
/// after an await the method may go on on another thread, and the scope stays open on the first one, where it collects
/// the tensors of whatever runs there next and frees them when it is finally disposed, from the wrong thread. In CI this
/// freed a training run's trajectories under it ("Tensor invalid -- empty handle") and then crashed the test host.
/// </summary>
public sealed partial class DisposeScopeRuleTests
{
    [Fact]
    public void NoDisposeScopeIsOpenAcrossAnAwait()
    {
        var offenders = new List<string>();
        int files = 0;
        foreach (var dir in new[] { "src", "tests" })
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(TestPaths.RepoRoot, dir), "*.cs", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(TestPaths.RepoRoot, file);
                if (relative.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj")) continue;
                files++;
                offenders.AddRange(ScopesAcrossAwaits(File.ReadAllText(file)).Select(line => $"{relative}:{line}"));
            }
        }
        Assert.True(files > 300, $"only {files} source files found under {TestPaths.RepoRoot}");
        Assert.True(offenders.Count == 0, "dispose scopes open across an await (open the scope after the await, or in a synchronous helper):\n" +
            string.Join("\n", offenders));
    }

    [Fact]
    public void TheRuleFindsScopesAcrossAwaitsAndNothingElse()
    {
        Assert.Equal([3], ScopesAcrossAwaits("""
            async Task F()
            {
                using var scope = NewDisposeScope();
                var x = rand(3);
                await Task.Yield(); // "await" in a comment or a string is not one
            }
            """));
        Assert.Equal([2], ScopesAcrossAwaits("""
            async Task F() {
                using (torch.NewDisposeScope()) {
                    if (x) { y(); }
                    await G();
                }
            }
            """));
        // Scopes that close before the await, and awaits in an async lambda started inside the scope, are fine.
        Assert.Empty(ScopesAcrossAwaits("""
            async Task F()
            {
                using (NewDisposeScope())
                {
                    copy = images.clone().DetachFromDisposeScope();
                }
                using (NewDisposeScope()) x = y.clone();
                await G("using var s = NewDisposeScope();");
                {
                    using var inner = NewDisposeScope();
                    var t = Task.Run(async () => { await H(); });
                    var u = Task.Run(async () => await H());
                }
                await G();
            }
            """));
    }

    /// <summary>The 1-based lines of scopes (<c>using ... NewDisposeScope()</c>) whose extent contains an await of their own method.</summary>
    private static List<int> ScopesAcrossAwaits(string source)
    {
        var code = CodeOnly(source);
        var found = new List<int>();
        foreach (Match m in ScopeStart().Matches(code))
        {
            int i = m.Index + m.Length;
            bool declaration = m.Groups["decl"].Success;
            int depth = 0, opened = 0;
            int asyncDepth = -1, asyncLine = -1;
            for (; i < code.Length; i++)
            {
                char c = code[i];
                if (c == '{')
                {
                    depth++;
                    opened++;
                }
                else if (c == '}')
                {
                    depth--;
                    if (asyncDepth >= 0 && depth == asyncDepth) asyncDepth = -1;
                    if (declaration ? depth < 0 : depth == 0) break;
                }
                else if (c == ';' && !declaration && depth == 0 && opened == 0)
                {
                    break;
                }
                else if (IsWord(code, i, "async"))
                {
                    asyncDepth = depth;
                    asyncLine = LineOf(code, i);
                }
                else if (IsWord(code, i, "await") && !(asyncDepth >= 0 && (depth > asyncDepth || LineOf(code, i) == asyncLine)))
                {
                    found.Add(LineOf(code, m.Index));
                    break;
                }
            }
        }
        return found;
    }

    private static bool IsWord(string code, int i, string word) =>
        string.CompareOrdinal(code, i, word, 0, word.Length) == 0
        && (i == 0 || !char.IsLetterOrDigit(code[i - 1]) && code[i - 1] != '_')
        && (i + word.Length >= code.Length || !char.IsLetterOrDigit(code[i + word.Length]) && code[i + word.Length] != '_');

    private static int LineOf(string code, int index) => 1 + code.AsSpan(0, index).Count('\n');

    /// <summary>The source with comments, strings and character literals blanked (line breaks kept).</summary>
    private static string CodeOnly(string source)
    {
        var sb = new StringBuilder(source.Length);
        int i = 0;
        void Blank(int end)
        {
            for (; i < end && i < source.Length; i++) sb.Append(source[i] == '\n' ? '\n' : ' ');
        }
        while (i < source.Length)
        {
            if (source.AsSpan(i).StartsWith("//")) Blank(source.IndexOf('\n', i) is var n and >= 0 ? n : source.Length);
            else if (source.AsSpan(i).StartsWith("/*")) Blank(source.IndexOf("*/", i + 2, StringComparison.Ordinal) + 2);
            else if (source.AsSpan(i).StartsWith("\"\"\""))
            {
                int quotes = 3;
                while (i + quotes < source.Length && source[i + quotes] == '"') quotes++;
                Blank(source.IndexOf(new string('"', quotes), i + quotes, StringComparison.Ordinal) + quotes);
            }
            else if (source[i] == '"' || source[i] == '\'')
            {
                char quote = source[i];
                bool verbatim = i > 0 && (source[i - 1] == '@' || i > 1 && source[i - 1] == '$' && source[i - 2] == '@');
                int j = i + 1;
                while (j < source.Length && source[j] != quote)
                {
                    if (source[j] == '\\' && !verbatim) j++;
                    else if (verbatim && source[j] == '"' && j + 1 < source.Length && source[j + 1] == '"') j++;
                    j++;
                }
                Blank(j + 1);
            }
            else sb.Append(source[i++]);
        }
        return sb.ToString();
    }

    [GeneratedRegex(@"\busing\s*(?:(?<decl>var\s+\w+\s*=\s*)|\(\s*(?:var\s+\w+\s*=\s*)?)(?:torch\s*\.\s*)?NewDisposeScope\s*\(\s*\)\s*\)?\s*;?")]
    private static partial Regex ScopeStart();
}
