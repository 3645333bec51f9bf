using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Prompts;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Prompts;

/// <summary>GenEval-style <c>.jsonl</c> prompt files: each record's fields reach the reward as strings and as their JSON.</summary>
public sealed class GenevalPromptFileTests
{
    private static string ExampleFile => Path.Combine(TestPaths.RepoRoot, "examples", "prompts", "geneval_example.jsonl");

    [Fact]
    public void TheExampleFileLoadsWithEachFieldsJson()
    {
        var source = (PromptRecordSource)PromptSources.Create("file:" + ExampleFile);
        Assert.Equal(6, source.Samples.Count);
        var counting = source.Samples[2];
        Assert.Equal("a photo of three apples", counting.Prompt);
        Assert.Equal("counting", counting.Metadata["tag"]);
        Assert.Equal("[{\"class\":\"apple\",\"count\":3}]", counting.Metadata["include"]);
        Assert.False(counting.Metadata.ContainsKey("prompt"));

        var json = RecordMetadata.ToJson(counting.Metadata);
        Assert.Equal(3, json["include"]![0]!["count"]!.GetValue<int>());
        Assert.Equal(4, json["exclude"]![0]!["count"]!.GetValue<int>());
        // A number that a string field happens to spell stays a string, as the record had it.
        var record = new RecordMetadata();
        record.Add("label", JsonValue.Create("[1]"));
        record.Add("count", JsonValue.Create(2));
        Assert.Equal("[1]", record["label"]);
        Assert.Equal("2", record["count"]);
        // Saved with the pending samples as any metadata dictionary is.
        Assert.Equal("{\"label\":\"[1]\",\"count\":\"2\"}", System.Text.Json.JsonSerializer.Serialize<IReadOnlyDictionary<string, string>>(record));
        var back = RecordMetadata.ToJson(record);
        Assert.Equal("[1]", back["label"]!.GetValue<string>());
        Assert.Equal(2, back["count"]!.GetValue<int>());
    }

    [Fact]
    public void MalformedLinesNameTheFileAndLine()
    {
        var dir = TestPaths.NewTempDir("geneval-prompts");
        try
        {
            var file = Path.Combine(dir, "bad.jsonl");
            File.WriteAllLines(file, ["{\"prompt\": \"a cat\", \"tag\": \"single_object\"}", "", "{\"prompt\": \"a dog\", \"tag\": "]);
            var e = Assert.Throws<ConfigException>(() => PromptRecordSource.Load(file));
            Assert.Contains($"{file} line 3", e.Message);
            Assert.Contains("not valid JSON", e.Message);

            File.WriteAllLines(file, ["{\"prompt\": \"a cat\"}", "{\"tag\": \"counting\", \"include\": []}"]);
            e = Assert.Throws<ConfigException>(() => PromptRecordSource.Load(file));
            Assert.Contains($"{file} line 2", e.Message);
            Assert.Contains("\"prompt\" must be a non-empty string", e.Message);

            File.WriteAllLines(file, ["{\"prompt\": \"a cat\", \"tag\": \"a\", \"tag\": \"b\"}"]);
            e = Assert.Throws<ConfigException>(() => PromptRecordSource.Load(file));
            Assert.Contains($"{file} line 1", e.Message);

            File.WriteAllLines(file, ["[\"a cat\"]"]);
            e = Assert.Throws<ConfigException>(() => PromptRecordSource.Load(file));
            Assert.Contains($"{file} line 1", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
