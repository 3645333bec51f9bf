using System.Reflection;
using System.Text.RegularExpressions;
using Ddpo.Reporting;
using Ddpo.Runs;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Api;

/// <summary>
/// The layers of docs/architecture.md, checked on the source and the assemblies: the core's namespaces (full names,
/// <c>Ddpo.Models.Lora</c> apart from <c>Ddpo.Models.Unet</c>, the root <c>Ddpo</c> included) have no dependency cycle, the core does not reference the reporting or pretraining assemblies, and
/// only the user-facing types are public.
/// </summary>
public sealed partial class LayeringTests
{
    [Fact]
    public void CoreNamespacesHaveNoCycle()
    {
        var edges = NamespaceDependencies(Path.Combine(TestPaths.RepoRoot, "src", "Ddpo"));
        Assert.Contains("Ddpo.Training", edges.Keys);
        Assert.Contains("Ddpo.Rewards", edges["Ddpo.Training"].Keys);
        var cyclic = CyclicEdges(edges);
        Assert.True(cyclic.Count == 0, "namespace dependencies in cycles:\n" + string.Join("\n", cyclic));
    }

    [Fact]
    public void TrainingAndEvaluationSeeModelsOnlyThroughThePolicyContract()
    {
        // The trainer and the evaluation name no model family: they use Ddpo.Policies (IDiffusionPolicy and its types)
        // and the sampler step types, so a new family plugs in without a branch in them (docs/architecture.md).
        var edges = NamespaceDependencies(Path.Combine(TestPaths.RepoRoot, "src", "Ddpo"));
        Assert.Contains("Ddpo.Policies", edges["Ddpo.Training"].Keys);
        foreach (var ns in new[] { "Ddpo.Training", "Ddpo.Evaluation" })
        {
            var families = edges[ns].Where(e => e.Key is "Ddpo.Pipelines" || e.Key.StartsWith("Ddpo.Models.", StringComparison.Ordinal) && e.Key is not ("Ddpo.Models.Loading" or "Ddpo.Models.Lora"))
                .Select(e => $"{e.Key} ({string.Join(", ", e.Value.Order())})").ToList();
            Assert.True(families.Count == 0, $"{ns} names model-family types:\n" + string.Join("\n", families));
        }
    }

    [Fact]
    public void CycleCheckFindsACycle()
    {
        // The check itself: namespaces that name each other's types are reported, on full names (Ddpo.M.A, Ddpo.M.B
        // and Ddpo.M.C would be one node Ddpo.M if names were cut to two parts), the root namespace included.
        var dir = Directory.CreateTempSubdirectory("ddpo-layering-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "A.cs"), "namespace Ddpo.A;\ninternal sealed class Alpha { Ddpo.B.Beta? b; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "B.cs"), "namespace Ddpo.B;\ninternal sealed class Beta { Alpha? a; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "MA.cs"), "namespace Ddpo.M.A;\ninternal sealed class MAlpha { M.B.MBeta? b; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "MB.cs"), "namespace Ddpo.M.B;\ninternal sealed class MBeta { MGamma? c; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "MC.cs"), "namespace Ddpo.M.C;\ninternal sealed class MGamma { Ddpo.M.A.MAlpha? a; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "MD.cs"), "namespace Ddpo.M.D;\ninternal sealed class MDelta { MAlpha? a; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "Root.cs"), "namespace Ddpo;\npublic sealed class Front { RootUser? u; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "RootUser.cs"), "namespace Ddpo.R;\ninternal sealed class RootUser { Front? f; }\n");
            var edges = NamespaceDependencies(dir.FullName);
            Assert.True(Reaches(edges, "Ddpo.A", "Ddpo.B") && Reaches(edges, "Ddpo.B", "Ddpo.A"));
            Assert.Equal(new[] { "Ddpo.M.B" }, edges["Ddpo.M.A"].Keys);
            Assert.Equal(new[] { "Ddpo.M.C" }, edges["Ddpo.M.B"].Keys);
            Assert.Equal(new[] { "Ddpo.M.A" }, edges["Ddpo.M.C"].Keys);
            Assert.True(Reaches(edges, "Ddpo.M.A", "Ddpo.M.C") && Reaches(edges, "Ddpo.M.C", "Ddpo.M.B"));
            Assert.Contains("Ddpo.M.A", edges["Ddpo.M.D"].Keys);
            Assert.False(Reaches(edges, "Ddpo.M.A", "Ddpo.M.D"));
            Assert.True(Reaches(edges, "Ddpo", "Ddpo.R") && Reaches(edges, "Ddpo.R", "Ddpo"));
            var cyclic = CyclicEdges(edges);
            Assert.Contains("Ddpo.M.C -> Ddpo.M.A (MAlpha)", cyclic);
            Assert.Contains("Ddpo -> Ddpo.R (RootUser)", cyclic);
            Assert.DoesNotContain(cyclic, e => e.StartsWith("Ddpo.M.D ", StringComparison.Ordinal));
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
                     "Ddpo.Runs.EpochMetrics", "Ddpo.Training.ITrainingObserver", "Ddpo.Pipelines.TextToImagePipeline" })
        {
            Assert.Contains(t, exported);
        }
        foreach (var t in new[] { "Ddpo.Training.PolicyUpdater", "Ddpo.Training.EpochSamples", "Ddpo.Models.Unet.UNet2DConditionModel",
                     "Ddpo.Config.ConfigSchema", "Ddpo.Runtime.AtomicFile", "Ddpo.Diagnostics.SpeedSuite",
                     "Ddpo.Training.NullTrainingObserver", "Ddpo.Training.CompositeTrainingObserver", "Ddpo.Distributed.SingleProcessGroup",
                     "Ddpo.Distributed.DataParallel", "Ddpo.Rewards.Remote.RewardImageEncoding" })
        {
            Assert.DoesNotContain(t, exported);
        }
        // The surface stays small: 81 of the core's types (docs/architecture.md lists them).
        Assert.InRange(exported.Count, 67, 81); // with the three reward model sections and StableDiffusionXLPipeline
        Assert.Equal(["Ddpo.Reporting.ComparisonReport", "Ddpo.Reporting.HtmlReportObserver", "Ddpo.Reporting.RunReport",
                "Ddpo.Reporting.RunWriters", "Ddpo.Reporting.TensorBoardObserver"],
            typeof(RunWriters).Assembly.GetExportedTypes().Where(t => !t.IsNested).Select(t => t.FullName!).Order(StringComparer.Ordinal));
        // The other assemblies are not libraries: the pretrainer and the CLI's commands (the tests see them as internals).
        Assert.Empty(Assembly.Load("Ddpo.Pretraining").GetExportedTypes());
        Assert.Empty(Assembly.Load("ddpo").GetExportedTypes());
    }

    /// <summary>
    /// For each namespace (its full name, e.g. <c>Ddpo.Models.Lora</c>), the namespaces whose top-level types its files name,
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
        var files = sources.Select((c, i) => (Code: qualified.Replace(c, ""), Namespace: namespaces[i])).ToList();
        var owners = new Dictionary<string, HashSet<string>>();
        foreach (var (code, ns) in files)
        {
            foreach (Match m in TopLevelType().Matches(code))
            {
                var name = m.Groups[1].Value;
                (owners.TryGetValue(name, out var set) ? set : owners[name] = []).Add(ns);
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
                if (target == ns) continue;
                var uses = edges.TryGetValue(ns, out var d) ? d : edges[ns] = [];
                (uses.TryGetValue(target, out var names) ? names : uses[target] = []).Add(m.Value);
            }
        }
        return edges;
    }

    /// <summary>The edges that lie on a cycle (their target reaches their source), each with the type names it uses.</summary>
    private static List<string> CyclicEdges(Dictionary<string, Dictionary<string, HashSet<string>>> edges) =>
        edges.SelectMany(a => a.Value.Where(b => Reaches(edges, b.Key, a.Key))
            .Select(b => $"{a.Key} -> {b.Key} ({string.Join(", ", b.Value.Order())})")).Order(StringComparer.Ordinal).ToList();

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
