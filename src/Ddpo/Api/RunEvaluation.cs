using Ddpo.Config;
using Ddpo.Evaluation;
using Ddpo.Pipelines;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Runtime;
using Ddpo.Training;
using static TorchSharp.torch;

namespace Ddpo;

/// <summary>
/// <c>ddpo eval</c> without the command line: a run's base model vs its fine-tuned checkpoint, sampled with the same
/// seeds on each prompt set and scored with each reward (<see cref="PolicyEvaluator"/>), written as
/// <c>RUN/eval/eval-epoch-NNNN.json</c>. In the front door rather than in <c>Ddpo.Evaluation</c> because it reads
/// the run's checkpoints (<c>Ddpo.Training</c>), which itself uses <c>Ddpo.Evaluation</c> (standard errors).
/// </summary>
internal sealed class RunEvaluation
{
    private RunEvaluation(RunFolder run, DdpoConfig config)
    {
        Run = run;
        Config = config;
    }

    /// <summary>The run folder.</summary>
    public RunFolder Run { get; }

    /// <summary>The run's config, as recorded in <c>RUN/config.toml</c>.</summary>
    public DdpoConfig Config { get; }

    /// <summary>Reads the run's config; an <see cref="ArgumentException"/> when <paramref name="runDirectory"/> has none.</summary>
    public static RunEvaluation Open(string runDirectory)
    {
        var run = RunFolder.At(runDirectory);
        if (!File.Exists(run.ConfigFile)) throw new ArgumentException($"--run: {run.ConfigFile} not found (is '{run.Root}' a ddpo run folder?)");
        return new RunEvaluation(run, DdpoConfig.Load(run.ConfigFile, null, []));
    }

    /// <summary>
    /// Samples and scores the base model, then the chosen checkpoint's (the rewards' prompt requirements checked before
    /// anything is sampled), with <see cref="EvaluationOptions.Rewards"/> or, by default, every reward the run computed
    /// (<see cref="EvaluationScorer.DefaultRewardNames"/>): one row per prompt set and reward, each with its paired
    /// standard error. <paramref name="log"/> receives the rewards' retry and dropped-sample messages; each
    /// sampling phase runs through <paramref name="progress"/> when given.
    /// </summary>
    /// <exception cref="ArgumentException">An option is out of range, a prompt set is unknown, or the checkpoint is missing.</exception>
    public EvaluationResult Evaluate(EvaluationOptions options, Device device, Action<string>? log = null, IEvaluationProgress? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var cfg = Config;
        var dtype = TorchRuntime.ResolveDType(cfg.Pretrained.Dtype, device);
        int perPrompt = options.SeedsPerPrompt;
        if (perPrompt < 1) throw new ArgumentException($"--seeds must be >= 1, got {perPrompt}");
        int limit = options.MaxPrompts;
        if (limit < 1) throw new ArgumentException($"--max-prompts must be >= 1, got {limit}");
        var sets = options.PromptSets.SelectMany(p => EvaluationPromptSets.Resolve(cfg, p))
            .Select(s => (s.Name, Prompts: EvaluationPromptSets.EvenlySpaced(s.Prompts, limit))).ToList();
        var registry = RewardFactory.CreateRegistry(cfg, log);
        // By default every reward the run computed: reward_fn (a weighted sum's components as rows of their own) and the watch rewards.
        var rewardNames = options.Rewards.Count > 0 ? options.Rewards.Distinct().ToArray() : EvaluationScorer.DefaultRewardNames(cfg);
        var scorers = new List<EvaluationScorer>();
        try
        {
            foreach (var n in rewardNames)
            {
                scorers.Add(n == cfg.RewardFn
                    ? EvaluationScorer.Of(n, registry.Create(cfg.RewardFn, cfg.Rewards), cfg.Rewards.Keys)
                    : EvaluationScorer.Of(n, registry.Create(n)));
            }
            foreach (var (name, set) in sets)
            {
                foreach (var scorer in scorers) RewardPromptChecks.Check(scorer.Reward, set, $"--prompts '{name}'");
            }
            return Evaluate(sets, scorers, perPrompt, options.CheckpointEpoch, device, dtype, progress);
        }
        finally
        {
            foreach (var scorer in scorers) (scorer.Reward as IDisposable)?.Dispose();
        }
    }

    /// <summary>Writes <paramref name="result"/> to <c>RUN/eval/eval-epoch-NNNN.json</c> and returns that path.</summary>
    public string Write(EvaluationResult result)
    {
        Directory.CreateDirectory(Run.EvalDir);
        var outFile = Run.EvalResultFile(result.CheckpointEpoch);
        File.WriteAllText(outFile, result.ToJson());
        return outFile;
    }

    private EvaluationResult Evaluate(List<(string Name, IReadOnlyList<PromptSample> Prompts)> sets, List<EvaluationScorer> scorers,
        int perPrompt, int? checkpointEpoch, Device device, ScalarType dtype, IEvaluationProgress? progress)
    {
        var cfg = Config;
        using var pipeline = PipelineLoader.FromPretrained(DdpoRun.ModelFolder(cfg.Model), device, dtype, cfg.Sample.MaxSequenceLength);
        var policy = pipeline.Policy;
        var options = cfg.Sample.ToSamplingOptions();
        long seed = cfg.Seed + 1_000_003;
        var baseScores = PolicyEvaluator.ScoreSets(policy, sets, scorers, perPrompt, options, seed, "base", progress);

        var info = checkpointEpoch is { } n
            ? Checkpoint.List(Run).FirstOrDefault(c => c.Epoch == n) ?? throw new ArgumentException($"--checkpoint: no checkpoint of epoch {n} in {Run.CheckpointsDir} (have: {string.Join(", ", Checkpoint.List(Run).Select(c => c.Epoch))})")
            : Checkpoint.Latest(Run) ?? throw new ArgumentException($"--run: no checkpoint in {Run.CheckpointsDir}");
        var weights = TrainableWeights.For(cfg, policy);
        var (_, tensors) = info.Load();
        EmaWeights.LoadForEvaluation(cfg, weights, tensors, info.Path);
        foreach (var t in tensors.Values) t.Dispose();
        var tunedScores = PolicyEvaluator.ScoreSets(policy, sets, scorers, perPrompt, options, seed, $"epoch {info.Epoch}", progress);

        // A component also asked for by name (--reward) is scored by itself and reported once.
        var rowNames = scorers.SelectMany(r => r.RowNames).Distinct().ToArray();
        var rows = sets.SelectMany(s => rowNames.Select(r => EvaluationRow.Of(s.Name, r, baseScores[(s.Name, r)], tunedScores[(s.Name, r)]))).ToList();
        return new EvaluationResult(Run.Root, info.Epoch, perPrompt, sets, rows);
    }
}
