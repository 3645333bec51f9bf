using System.CommandLine;
using System.Text.Json;
using Ddpo.Config;
using Ddpo.Evaluation;
using Ddpo.Pipelines;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Rewards.Alignment;
using Ddpo.Runtime;
using Ddpo.Training;
using Spectre.Console;
using static TorchSharp.torch;

namespace Ddpo.Cli.Commands;

/// <summary>
/// <c>ddpo eval</c>: base vs fine-tuned rewards on the training prompts, on held-out prompts, and on any other
/// prompt set (e.g. <c>everyday_objects</c>, the paper's test of generalisation beyond animals).
/// </summary>
public static class EvalCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var run = new Option<string>("--run") { Description = "the run folder", Required = true };
        var checkpoint = new Option<int?>("--checkpoint") { Description = "the epoch of the checkpoint to evaluate (default: the newest)" };
        var prompts = new Option<string[]>("--prompts") { Description = "train, held-out, or any prompt set: a prompt_fn name such as everyday_objects, or file:PATH (repeatable)", DefaultValueFactory = _ => ["train", "held-out"] };
        var rewards = new Option<string[]>("--reward") { Description = "reward to score with (repeatable; default: the run's reward)" };
        var seeds = new Option<int>("--seeds") { Description = "images per prompt", DefaultValueFactory = _ => 2 };
        var maxPrompts = new Option<int>("--max-prompts") { Description = "at most this many prompts per set, evenly spaced", DefaultValueFactory = _ => 48 };
        var common = new CommonOptions();
        var command = new Command("eval", "Compare base and fine-tuned models on the training prompts, on prompts held out of training, or on any prompt set") { run, checkpoint, prompts, rewards, seeds, maxPrompts };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            var runDir = new RunDirectory(parse.GetValue(run)!);
            if (!File.Exists(runDir.ConfigFile)) throw new ArgumentException($"--run: {runDir.ConfigFile} not found (is '{runDir.Root}' a ddpo run folder?)");
            var cfg = DdpoConfig.Load(runDir.ConfigFile, null, []);
            var deviceText = parse.GetResult(common.Device) is { Implicit: false } ? parse.GetValue(common.Device) : cfg.Device;
            var (device, _) = common.Resolve(parse, deviceText);
            var dtype = TorchRuntime.ResolveDType(cfg.Pretrained.Dtype, device);
            int perPrompt = parse.GetValue(seeds);
            if (perPrompt < 1) throw new ArgumentException($"--seeds must be >= 1, got {perPrompt}");

            int limit = parse.GetValue(maxPrompts);
            if (limit < 1) throw new ArgumentException($"--max-prompts must be >= 1, got {limit}");
            var sets = parse.GetValue(prompts)!.SelectMany(p => ResolvePromptSets(cfg, p))
                .Select(s => (s.Name, Prompts: EvenlySpaced(s.Prompts, limit))).ToList();
            var registry = RewardFactory.CreateRegistry(cfg, m => AnsiConsole.MarkupLineInterpolated($"[grey]{m}[/]"));
            var rewardNames = parse.GetValue(rewards) is { Length: > 0 } names ? names : [cfg.RewardFn];
            if (rewardNames.Contains(RewardNames.VlmStrictSatisfaction))
            {
                foreach (var (name, set) in sets) StrictSatisfactionReward.CheckPrompts(set, $"--prompts '{name}'");
            }
            var scorers = rewardNames.Select(n => (Name: n, Reward: n == cfg.RewardFn ? registry.Create(cfg.RewardFn, cfg.Rewards) : registry.Create(n))).ToList();

            using var pipeline = ModelResolver.LoadPipeline(cfg.Model, device, dtype);
            var options = new SamplingOptions { NumSteps = cfg.Sample.NumSteps, Eta = cfg.Sample.Eta, GuidanceScale = cfg.Sample.GuidanceScale, FinalStep = cfg.Sample.FinalStep };
            long seed = cfg.Seed + 1_000_003;
            var baseScores = Score(pipeline, sets, scorers, perPrompt, options, seed, "base");

            var checkpoints = new CheckpointStore(runDir.Root, int.MaxValue);
            var info = parse.GetValue(checkpoint) is { } n
                ? checkpoints.List().FirstOrDefault(c => c.Epoch == n) ?? throw new ArgumentException($"--checkpoint: no checkpoint of epoch {n} in {checkpoints.Root} (have: {string.Join(", ", checkpoints.List().Select(c => c.Epoch))})")
                : checkpoints.Latest() ?? throw new ArgumentException($"--run: no checkpoint in {checkpoints.Root}");
            var weights = cfg.UseLora
                ? TrainableWeights.WithLora(pipeline.Unet, cfg.Lora.Rank, cfg.Lora.Alpha, cfg.Seed, cfg.Lora.Init)
                : TrainableWeights.FullUnet(pipeline.Unet);
            var (_, tensors) = CheckpointStore.Load(info.Path);
            weights.LoadRawState(tensors, info.Path);
            foreach (var t in tensors.Values) t.Dispose();
            var tunedScores = Score(pipeline, sets, scorers, perPrompt, options, seed, $"epoch {info.Epoch}");

            var rows = new List<EvaluationRow>();
            var table = new Table().AddColumns("prompts", "n", "reward", "base", $"fine-tuned (epoch {info.Epoch})", "change ± paired SE");
            foreach (var (set, _) in sets)
            {
                foreach (var (name, _) in scorers)
                {
                    var row = EvaluationRow.Of(set, name, baseScores[(set, name)], tunedScores[(set, name)]);
                    rows.Add(row);
                    table.AddRow(set, row.Base.Count.ToString(), name, $"{row.Base.Mean:F4} ± {row.Base.Sem:F4}",
                        $"{row.FineTuned.Mean:F4} ± {row.FineTuned.Sem:F4}", $"{row.Change:+0.0000;-0.0000} ± {row.ChangeSem:F4} ({row.ChangeInSems:+0.0;-0.0} SE)");
                }
            }
            AnsiConsole.Write(table);
            var outDir = Path.Combine(runDir.Root, "eval");
            Directory.CreateDirectory(outDir);
            var outFile = Path.Combine(outDir, $"eval-epoch-{info.Epoch:D4}.json");
            File.WriteAllText(outFile, JsonSerializer.Serialize(new
            {
                run = runDir.Root,
                checkpoint_epoch = info.Epoch,
                seeds_per_prompt = perPrompt,
                prompt_sets = sets.ToDictionary(s => s.Name, s => s.Prompts.Select(p => p.Prompt)),
                results = rows.Select(r => new
                {
                    prompts = r.PromptSet, reward = r.Reward,
                    base_mean = r.Base.Mean, base_sem = r.Base.Sem, finetuned_mean = r.FineTuned.Mean, finetuned_sem = r.FineTuned.Sem,
                    change = r.Change, change_sem = r.ChangeSem, n = r.Base.Count,
                }),
            }, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
            AnsiConsole.MarkupLineInterpolated($"wrote [green]{outFile}[/]");
            return 0;
        });
        return command;
    }

    private static Dictionary<(string, string), float[]> Score(TextToImagePipeline pipeline, List<(string Name, IReadOnlyList<PromptSample> Prompts)> sets,
        List<(string Name, IRewardFunction Reward)> scorers, int perPrompt, SamplingOptions options, long seed, string label)
    {
        var result = new Dictionary<(string, string), float[]>();
        foreach (var (set, prompts) in sets)
        {
            var (images, all) = ProgressReporter.Run($"{label}: sampling '{set}' ({prompts.Count} prompts x {perPrompt})", 1,
                _ => PolicyEvaluator.SampleFixed(pipeline, prompts, perPrompt, options, seed));
            using (images)
            {
                foreach (var (name, reward) in scorers)
                {
                    result[(set, name)] = PolicyEvaluator.Score(reward, images, all);
                }
            }
        }
        return result;
    }

    private static IReadOnlyList<PromptSample> EvenlySpaced(IReadOnlyList<PromptSample> all, int limit) =>
        all.Count <= limit ? all : Enumerable.Range(0, limit).Select(i => all[(int)((long)i * all.Count / limit)]).ToArray();

    /// <summary>
    /// <c>train</c>: the run's prompts; <c>held-out</c>: the split its <c>prompt_fn</c> left out (animals
    /// not trained on; for activities also unseen activities) or, for a prompt set without a split, animal
    /// prompts from the other animal list that the run never saw; anything else: a prompt_fn name (e.g.
    /// <c>everyday_objects</c>) or file:PATH, all its prompts. An unknown name is an <see cref="ArgumentException"/>.
    /// Each prompt comes with its metadata, which the rewards receive as in training.
    /// </summary>
    public static IEnumerable<(string Name, IReadOnlyList<PromptSample> Prompts)> ResolvePromptSets(DdpoConfig cfg, string spec)
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
}
