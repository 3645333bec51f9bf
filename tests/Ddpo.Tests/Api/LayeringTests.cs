using System.Reflection;
using System.Text.RegularExpressions;
using Ddpo.Reporting;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Api;

/// <summary>
/// The layers of docs/architecture.md, checked on the source and the assemblies: the core's namespaces
/// (<c>Ddpo.X</c>) have no dependency cycle, the core does not reference the reporting or pretraining assemblies, and
/// only the user-facing types are public.
/// </summary>
public sealed partial class LayeringTests
{
    // Shared by every layer (thrown or named anywhere), so they are a layer of their own below all others even though
    // they sit in the root namespace with the front door.
    private static readonly HashSet<string> BaseTypes = ["ConfigException", "CodeObjects"];

    [Fact]
    public void CoreNamespacesHaveNoCycle()
    {
        var edges = NamespaceDependencies(Path.Combine(TestPaths.RepoRoot, "src", "Ddpo"));
        Assert.Contains("Ddpo.Training", edges.Keys);
        Assert.Contains("Ddpo.Rewards", edges["Ddpo.Training"].Keys);
        var cyclic = edges.SelectMany(a => a.Value.Where(b => Reaches(edges, b.Key, a.Key))
            .Select(b => $"{a.Key} -> {b.Key} ({string.Join(", ", b.Value.Order())})")).Order().ToList();
        Assert.True(cyclic.Count == 0, "namespace dependencies in cycles:\n" + string.Join("\n", cyclic));
    }

    [Fact]
    public void CycleCheckFindsACycle()
    {
        // The check itself: two namespaces that name each other's types are reported.
        var dir = Directory.CreateTempSubdirectory("ddpo-layering-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "A.cs"), "namespace Ddpo.A;\ninternal sealed class Alpha { Ddpo.B.Beta? b; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "B.cs"), "namespace Ddpo.B;\ninternal sealed class Beta { Alpha? a; }\n");
            var edges = NamespaceDependencies(dir.FullName);
            Assert.True(Reaches(edges, "Ddpo.A", "Ddpo.B") && Reaches(edges, "Ddpo.B", "Ddpo.A"));
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void CoreDoesNotReferenceReportingOrPretraining()
    {
        var core = typeof(DdpoRun).Assembly;
        var names = core.GetReferencedAssemblies().Select(a => a.Name).ToList();
        Assert.Contains("TorchSharp", names);
        Assert.DoesNotContain("Ddpo.Reporting", names);
        Assert.DoesNotContain("Ddpo.Pretraining", names);
        Assert.Contains(typeof(DdpoRun).Assembly.GetName().Name, typeof(RunWriters).Assembly.GetReferencedAssemblies().Select(a => a.Name));
    }

    [Fact]
    public void OnlyTheUserFacingTypesArePublic()
    {
        var exported = typeof(DdpoRun).Assembly.GetExportedTypes().Where(t => !t.IsNested).Select(t => t.FullName!).ToHashSet();
        foreach (var t in new[] { "Ddpo.DdpoRun", "Ddpo.DdpoTrainingOptions", "Ddpo.Base.ConfigException", "Ddpo.Rewards.DelegateReward",
                     "Ddpo.Training.EpochMetrics", "Ddpo.Training.ITrainingObserver", "Ddpo.Pipelines.TextToImagePipeline" })
        {
            Assert.Contains(t, exported);
        }
        foreach (var t in new[] { "Ddpo.Training.PolicyUpdater", "Ddpo.Training.EpochSamples", "Ddpo.Models.Unet.UNet2DConditionModel",
                     "Ddpo.Config.ConfigSchema", "Ddpo.Runtime.AtomicFile", "Ddpo.Diagnostics.SpeedSuite" })
        {
            Assert.DoesNotContain(t, exported);
        }
        // The surface stays small: about 60 of the core's 220 types (docs/architecture.md lists them).
        Assert.InRange(exported.Count, 30, 80);
        var pretraining = Assembly.Load("Ddpo.Pretraining");
        Assert.Empty(pretraining.GetExportedTypes());
    }

    /// <summary>
    /// For each namespace (first two parts, <c>Ddpo.X</c>), the namespaces whose top-level types its files name,
    /// with those type names. Comments are ignored, and so are names after a '.' (members) and the names of the file's
    /// properties.
    /// </summary>
    private static Dictionary<string, Dictionary<string, HashSet<string>>> NamespaceDependencies(string folder)
    {
        var sources = Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/") && !f.Contains("/bin/"))
            .Select(f => LineComment().Replace(File.ReadAllText(f), "")).ToList();
        var namespaces = sources.Select(c => FileNamespace().Match(c).Groups[1].Value).ToList();
        // Qualified names (Ddpo.Distributed.IProcessGroup, Training.SdeWindow) lose their namespace part, so that the
        // type name counts while a member after a '.' does not.
        var qualifiers = namespaces.SelectMany(ns => { var parts = ns.Split('.'); return Enumerable.Range(0, parts.Length).Select(i => string.Join('.', parts[i..])); })
            .Distinct().OrderByDescending(q => q.Length).Select(Regex.Escape);
        var qualified = new Regex(@"(?<![\w.])(?:" + string.Join('|', qualifiers) + @")\.(?=[A-Z])");
        var files = sources.Select((c, i) => (Code: qualified.Replace(c, ""), Namespace: Layer(namespaces[i]))).ToList();
        var owners = new Dictionary<string, HashSet<string>>();
        foreach (var (code, ns) in files)
        {
            foreach (Match m in TopLevelType().Matches(code))
            {
                var name = m.Groups[1].Value;
                (owners.TryGetValue(name, out var set) ? set : owners[name] = []).Add(BaseTypes.Contains(name) ? "Ddpo(base)" : ns);
            }
        }
        var edges = new Dictionary<string, Dictionary<string, HashSet<string>>>();
        foreach (var (code, ns) in files)
        {
            // A property named like a type (SampleConfig.SdeWindow) is the property wherever its file names it bare.
            var properties = Property().Matches(code).Select(m => m.Groups[1].Value).ToHashSet();
            foreach (Match m in Identifier().Matches(code))
            {
                if (properties.Contains(m.Value) || !owners.TryGetValue(m.Value, out var set) || set.Count != 1) continue;
                var target = set.First();
                if (BaseTypes.Contains(m.Value) || target == ns) continue;
                var uses = edges.TryGetValue(ns, out var d) ? d : edges[ns] = [];
                (uses.TryGetValue(target, out var names) ? names : uses[target] = []).Add(m.Value);
            }
        }
        return edges;
    }

    private static bool Reaches(Dictionary<string, Dictionary<string, HashSet<string>>> edges, string from, string to)
    {
        var seen = new HashSet<string> { from };
        var stack = new Stack<string>([from]);
        while (stack.TryPop(out var at))
        {
            if (at == to) return true;
            if (!edges.TryGetValue(at, out var next)) continue;
            foreach (var n in next.Keys) if (seen.Add(n)) stack.Push(n);
        }
        return false;
    }

    private static string Layer(string ns) => string.Join('.', ns.Split('.').Take(2));

    [GeneratedRegex(@"//.*")]
    private static partial Regex LineComment();

    [GeneratedRegex(@"^namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex FileNamespace();

    [GeneratedRegex(@"^(?:public|internal)\s+(?:(?:sealed|static|abstract|readonly|partial|unsafe|record|ref)\s+)*(?:class|record|struct|interface|enum)\s+(\w+)", RegexOptions.Multiline)]
    private static partial Regex TopLevelType();

    [GeneratedRegex(@"(?<![.\w])[A-Z]\w*\b")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"\b([A-Z]\w*)\s*\{\s*(?:get|set|init)\b")]
    private static partial Regex Property();
}
