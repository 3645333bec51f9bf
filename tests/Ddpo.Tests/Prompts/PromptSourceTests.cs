using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Prompts;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Prompts;

public sealed class PromptSourceTests
{
    [Fact]
    public void ShippedListsHaveThePapersCounts()
    {
        Assert.Equal(1000, PromptLists.Load("imagenet_classes.txt").Count);
        Assert.Equal(45, PromptLists.Load("simple_animals.txt").Count);
        Assert.Equal(3, PromptLists.Load("activities.txt").Count);

        var animals = PromptSources.Create("imagenet_animals");
        Assert.Equal(398, animals.All.Count);
        Assert.Equal("tench, Tinca tinca", animals.All[0]); // the whole line, as ddpo-pytorch
        Assert.Equal(PromptLists.Load("imagenet_classes.txt")[397], animals.All[^1]);
        Assert.Equal(1000, PromptSources.Create("imagenet_all").All.Count);
        Assert.Equal(118, PromptSources.Create("imagenet_dogs").All.Count);
        Assert.Equal(45, PromptSources.Create("simple_animals").All.Count);
    }

    [Fact]
    public void DrawsComeFromTheListAndAreDeterministicForASeed()
    {
        var source = PromptSources.Create("imagenet_animals");
        var a = Enumerable.Range(0, 200).Select(_ => source.Next(new Random(5)).Prompt).Distinct().ToList();
        Assert.Single(a); // same seed, same first draw
        var rng = new Random(9);
        var draws = Enumerable.Range(0, 2000).Select(_ => source.Next(rng).Prompt).ToList();
        Assert.All(draws, d => Assert.Contains(d, source.All));
        Assert.True(draws.Distinct().Count() > 300, "uniform draws over 398 prompts should cover most of them");
        var rng2 = new Random(9);
        Assert.Equal(draws, Enumerable.Range(0, 2000).Select(_ => source.Next(rng2).Prompt).ToList());
    }

    [Theory]
    [InlineData("elephant", "an elephant")]
    [InlineData("owl", "an owl")]
    [InlineData("horse", "a horse")]
    [InlineData("ant", "an ant")]
    [InlineData("unicorn", "a unicorn")]
    [InlineData("hour", "an hour")]
    [InlineData("eagle", "an eagle")]
    [InlineData("iguana", "an iguana")]
    [InlineData("urchin", "an urchin")]
    [InlineData("ewe", "a ewe")]
    [InlineData("European bison", "a European bison")]
    [InlineData("yak", "a yak")]
    [InlineData("8-legged spider", "an 8-legged spider")]
    public void ArticlesFollowTheSound(string word, string expected) =>
        Assert.Equal(expected, Articles.WithArticle(word));

    [Fact]
    public void NounsActivitiesComposesPromptsWithMetadata()
    {
        var source = PromptSources.Create("nouns_activities", new Dictionary<string, object>
        {
            ["nouns_file"] = "simple_animals.txt",
            ["activities_file"] = "activities.txt",
        });
        Assert.Equal(45 * 3, source.All.Count);
        Assert.Contains("an ant riding a bike", source.All);
        Assert.Contains("a cat playing chess", source.All);
        var rng = new Random(1);
        for (int i = 0; i < 50; i++)
        {
            var s = source.Next(rng);
            Assert.Equal(NounsActivitiesSource.Compose(s.Metadata["animal"], s.Metadata["activity"]), s.Prompt);
            Assert.StartsWith(Articles.AOrAn(s.Metadata["animal"]) + " " + s.Metadata["animal"] + " ", s.Prompt);
        }
    }

    [Fact]
    public void EverydayObjectsAreFiftyLowerCasePromptsWithTheirArticle()
    {
        var source = PromptSources.Create("everyday_objects");
        var prompts = source.All;
        Assert.Equal(50, prompts.Count);
        Assert.Equal(50, prompts.Distinct().Count());
        Assert.Equal(50, PromptLists.Load("everyday_objects.txt").Count);
        Assert.Equal(["a toaster", "a chair", "a car", "a coffee cup"], prompts.Take(4));
        Assert.Equal("a flower", prompts[^1]);
        // The five objects said with a vowel sound; every other prompt takes "a".
        string[] withAn = ["an iron", "an oven", "an umbrella", "an eraser", "an envelope"];
        Assert.Equal(withAn, prompts.Where(p => p.StartsWith("an ", StringComparison.Ordinal)));
        Assert.All(prompts.Except(withAn), p => Assert.StartsWith("a ", p));
        Assert.All(prompts, p => Assert.Equal(p.ToLowerInvariant(), p));
        Assert.Contains("a vacuum cleaner", prompts);
        Assert.Contains("a post-it notes", prompts); // "a(n) <object>" as given, even for the one plural

        var rng = new Random(3);
        for (int i = 0; i < 20; i++)
        {
            var s = source.Next(rng);
            Assert.Equal(Articles.WithArticle(s.Metadata[PromptSources.ObjectKey]), s.Prompt);
        }
        Assert.Empty(prompts.Intersect(PromptSources.Create("animals").All)); // no overlap with the training animals
    }

    [Fact]
    public void HeldOutSplitsAreDisjointCompleteAndDeterministic()
    {
        var animals = PromptLists.Load("simple_animals.txt");
        var split = HeldOut.Split(animals);
        Assert.Equal(9, split.HeldOut.Count); // 20% of 45
        Assert.Equal(36, split.Train.Count);
        Assert.Empty(split.Train.Intersect(split.HeldOut));
        Assert.Equal(animals.OrderBy(a => a), split.Train.Concat(split.HeldOut).OrderBy(a => a));
        Assert.Equal(split.HeldOut, HeldOut.Split(animals).HeldOut);

        var train = PromptSources.Create("simple_animals_train").All;
        var held = PromptSources.Create("simple_animals_heldout").All;
        Assert.Equal(split.Train, train);
        Assert.Equal(split.HeldOut, held);

        var na = HeldOut.NounsActivities(animals, PromptLists.Load("activities.txt"));
        Assert.Single(na.Activities.HeldOut);
        Assert.Equal(2, na.Activities.Train.Count);
        var trainPrompts = PromptSources.Create("nouns_activities_train").All;
        var heldAnimals = PromptSources.Create("nouns_activities_heldout_animals").All;
        var heldActivities = PromptSources.Create("nouns_activities_heldout_activities").All;
        Assert.Equal(36 * 2, trainPrompts.Count);
        Assert.Equal(9 * 2, heldAnimals.Count);
        Assert.Equal(36 * 1, heldActivities.Count);
        Assert.Empty(trainPrompts.Intersect(heldAnimals));
        Assert.Empty(trainPrompts.Intersect(heldActivities));
        Assert.Empty(heldAnimals.Intersect(heldActivities));
        Assert.All(heldActivities, p => Assert.EndsWith(na.Activities.HeldOut[0], p));

        var custom = PromptSources.Create("simple_animals_heldout", new Dictionary<string, object> { ["heldout_fraction"] = 0.5 });
        Assert.Equal(23, custom.All.Count);
    }

    [Fact]
    public void FileSourcesReadOnePromptPerLine()
    {
        var dir = TestPaths.NewTempDir("ddpo-prompts");
        try
        {
            var path = Path.Combine(dir, "mine.txt");
            File.WriteAllText(path, "a red cube\n\n  a blue sphere  \n");
            var source = PromptSources.Create("file:" + path);
            Assert.Equal(["a red cube", "a blue sphere"], source.All);
            Assert.True(PromptSources.IsKnown("file:" + path));
            Assert.Throws<ConfigException>(() => PromptSources.Create("file:" + Path.Combine(dir, "none.txt")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void BadNamesAndKwargsAreConfigErrors()
    {
        var e = Assert.Throws<ConfigException>(() => PromptSources.Create("reptiles"));
        Assert.Contains("prompt_fn", e.Message);
        var k = Assert.Throws<ConfigException>(() => PromptSources.Create("simple_animals", new Dictionary<string, object> { ["nouns_file"] = "x" }));
        Assert.Contains("prompt_fn_kwargs.nouns_file", k.Message);
        var f = Assert.Throws<ConfigException>(() => PromptSources.Create("nouns_activities", new Dictionary<string, object> { ["nouns_file"] = "no_such_list.txt" }));
        Assert.Contains("no_such_list.txt", f.Message);
    }

    [Fact]
    public void EverySourceListsItsPromptsWithTheMetadataItDraws()
    {
        var animals = PromptSources.Create("animals");
        Assert.Equal(animals.All, animals.Samples.Select(s => s.Prompt));
        Assert.Equal("cat", animals.Samples.Single(s => s.Prompt == "a cat").Metadata["animal"]);
        var activities = PromptSources.Create("nouns_activities");
        Assert.Equal(activities.All, activities.Samples.Select(s => s.Prompt));
        var rng = new Random(3);
        for (int i = 0; i < 20; i++)
        {
            var drawn = activities.Next(rng);
            var listed = activities.Samples.Single(s => s.Prompt == drawn.Prompt);
            Assert.Equal(drawn.Metadata.OrderBy(kv => kv.Key), listed.Metadata.OrderBy(kv => kv.Key));
        }
    }

    [Fact]
    public void JsonLinesPromptFilesCarryQuestionsAndAnswers()
    {
        var dir = TestPaths.NewTempDir();
        var path = Path.Combine(dir, "qa.jsonl");
        File.WriteAllText(path, """
            {"prompt": "two cats", "questions": ["How many cats are there?", "What animal is this?"], "answers": ["two", "cat"]}

            {"prompt": " a dog ", "questions": "What animal is this?", "answers": "dog", "difficulty": 2}
            """);
        var source = PromptSources.Create("file:" + path);
        Assert.Equal(["two cats", "a dog"], source.All);
        var cats = source.Samples[0];
        Assert.Equal("""["How many cats are there?","What animal is this?"]""", cats.Metadata["questions"]);
        var pairs = Ddpo.Rewards.Alignment.StrictSatisfactionReward.ReadPairs(cats.Metadata, out _);
        Assert.Equal([("How many cats are there?", "two"), ("What animal is this?", "cat")], pairs!);
        Assert.Equal("dog", source.Samples[1].Metadata["answers"]);
        Assert.Equal("2", source.Samples[1].Metadata["difficulty"]);
        var rng = new Random(1);
        var drawn = Enumerable.Range(0, 50).Select(_ => source.Next(rng).Prompt).ToHashSet();
        Assert.Equal(["a dog", "two cats"], drawn.Order());
        Ddpo.Rewards.Alignment.StrictSatisfactionReward.CheckPrompts(source.Samples, "qa.jsonl");

        // The same records as a JSON array.
        var json = Path.Combine(dir, "qa.json");
        File.WriteAllText(json, """[{"prompt": "two cats", "questions": ["How many?"], "answers": ["two"]}]""");
        Assert.Equal("""["two"]""", PromptSources.Create("file:" + json).Samples[0].Metadata["answers"]);

        // Bad records name the file and the line; prompts without questions are refused for strict satisfaction.
        File.WriteAllText(path, "{\"prompt\": \"ok\"}\n{\"questions\": [\"?\"]}\n");
        var e = Assert.Throws<ConfigException>(() => PromptSources.Create("file:" + path));
        Assert.Contains("qa.jsonl line 2", e.Message);
        Assert.Contains("\"prompt\"", e.Message);
        File.WriteAllText(path, "{\"prompt\": \"ok\"\n");
        Assert.Contains("line 1: not valid JSON", Assert.Throws<ConfigException>(() => PromptSources.Create("file:" + path)).Message);
        File.WriteAllText(path, "[\"a cat\"]\n");
        Assert.Contains("expected a JSON object", Assert.Throws<ConfigException>(() => PromptSources.Create("file:" + path)).Message);
        var refused = Assert.Throws<ConfigException>(() =>
            Ddpo.Rewards.Alignment.StrictSatisfactionReward.CheckPrompts(PromptSources.Create("animals").Samples, "prompt_fn 'animals'"));
        Assert.Contains("prompt 'a cat' of prompt_fn 'animals'", refused.Message);
        Assert.Contains("file:PATH.jsonl", refused.Message);
        Directory.Delete(dir, true);
    }
}
