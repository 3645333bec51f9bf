using Ddpo.Config;
using Ddpo.Evaluation;
using Xunit;

namespace Ddpo.Tests.Evaluation;

public sealed class EvalPromptSetTests
{
    private static DdpoConfig With(string promptFn) => DdpoConfig.Load(null, null, [$"prompt_fn=\"{promptFn}\""]);

    [Fact]
    public void HeldOutIsTheSplitTheRunLeftOut()
    {
        var sets = EvaluationPromptSets.Resolve(With("animals_train"), "held-out").ToList();
        var set = Assert.Single(sets);
        Assert.Equal("held-out", set.Name);
        Assert.Equal(9, set.Prompts.Count);
        var train = EvaluationPromptSets.Resolve(With("animals_train"), "train").Single().Prompts.Select(p => p.Prompt);
        Assert.Empty(train.Intersect(set.Prompts.Select(p => p.Prompt)));

        var activities = EvaluationPromptSets.Resolve(With("nouns_activities_train"), "held-out").Select(s => s.Name).ToList();
        Assert.Equal(["held-out animals", "held-out activities"], activities);
    }

    [Fact]
    public void AnyPromptSetCanBeNamed()
    {
        var objects = EvaluationPromptSets.Resolve(With("animals_train"), "everyday_objects").Single();
        Assert.Equal("everyday_objects", objects.Name);
        Assert.Equal(50, objects.Prompts.Count);
        Assert.Contains("an umbrella", objects.Prompts.Select(p => p.Prompt));
        var e = Assert.Throws<ArgumentException>(() => EvaluationPromptSets.Resolve(With("animals_train"), "kitchenware").ToList());
        Assert.Contains("--prompts", e.Message);
        Assert.Contains("everyday_objects", e.Message);
    }

    [Fact]
    public void WithoutASplitHeldOutUsesUnseenAnimalPrompts()
    {
        var fromImagenet = EvaluationPromptSets.Resolve(With("imagenet_animals"), "held-out").Single();
        Assert.Contains("a cat", fromImagenet.Prompts.Select(p => p.Prompt));
        var fromAnimals = EvaluationPromptSets.Resolve(With("animals"), "held-out").Single();
        Assert.NotEmpty(fromAnimals.Prompts);
        Assert.DoesNotContain("a cat", fromAnimals.Prompts.Select(p => p.Prompt));
        Assert.Throws<ArgumentException>(() => EvaluationPromptSets.Resolve(With("file:/tmp/x.txt"), "held-out").ToList());
    }
}
