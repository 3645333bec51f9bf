using Ddpo.Config;
using Ddpo.Prompts;

namespace Ddpo.Evaluation;

/// <summary>The prompt sets of an evaluation, by the names <c>ddpo eval --prompts</c> takes.</summary>
internal static class EvaluationPromptSets
{
    /// <summary>
    /// <c>train</c>: the run's prompts; <c>held-out</c>: the split its <c>prompt_fn</c> left out (animals
    /// not trained on; for activities also unseen activities) or, for a prompt set without a split, animal
    /// prompts from the other animal list that the run never saw; anything else: a prompt_fn name (e.g.
    /// <c>everyday_objects</c>) or file:PATH, all its prompts. An unknown name is an <see cref="ArgumentException"/>.
    /// Each prompt comes with its metadata, which the rewards receive as in training.
    /// </summary>
    public static IEnumerable<(string Name, IReadOnlyList<PromptSample> Prompts)> Resolve(DdpoConfig cfg, string spec)
    {
        var kwargs = cfg.PromptFnKwargs;
        if (spec == "train")
        {
            yield return ("train", PromptSources.Create(cfg.PromptFn, kwargs).Samples);
            yield break;
        }
        if (spec is "held-out" or "heldout")
        {
            if (cfg.PromptFn.EndsWith("_train", StringComparison.Ordinal))
            {
                // The split the run's prompt_fn left out: unseen animals (and, for activities, unseen activities).
                var stem = cfg.PromptFn[..^"_train".Length];
                foreach (var name in PromptSources.Names.Where(n => n.StartsWith(stem + "_heldout", StringComparison.Ordinal)))
                {
                    yield return (name == stem + "_heldout" ? "held-out" : "held-out" + name[(stem + "_heldout").Length..].Replace('_', ' '), PromptSources.Create(name, kwargs).Samples);
                }
                yield break;
            }
            if (cfg.PromptFn.StartsWith(PromptSources.FilePrefix, StringComparison.Ordinal))
            {
                throw new ArgumentException($"--prompts held-out: the run trained on '{cfg.PromptFn}'; name the held-out prompts with --prompts file:PATH");
            }
            // No split: animals from the other list, in prompts the run never saw.
            var trained = PromptSources.Create(cfg.PromptFn, kwargs).All.ToHashSet(StringComparer.OrdinalIgnoreCase);
            var other = cfg.PromptFn.StartsWith("imagenet", StringComparison.Ordinal) ? "animals" : "imagenet_animals";
            yield return ("held-out", PromptSources.Create(other, null).Samples.Where(p => !trained.Contains(p.Prompt)).ToArray());
            yield break;
        }
        if (!PromptSources.IsKnown(spec))
        {
            throw new ArgumentException($"--prompts: unknown prompt set '{spec}' (expected train, held-out, file:PATH or one of {string.Join(", ", PromptSources.Names)})");
        }
        yield return (spec, PromptSources.Create(spec, null).Samples);
    }

    /// <summary>At most <paramref name="limit"/> of <paramref name="all"/>, evenly spaced (all of them when there are no more).</summary>
    public static IReadOnlyList<PromptSample> EvenlySpaced(IReadOnlyList<PromptSample> all, int limit) =>
        all.Count <= limit ? all : Enumerable.Range(0, limit).Select(i => all[(int)((long)i * all.Count / limit)]).ToArray();
}
