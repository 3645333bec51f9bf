using Ddpo.Config;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Runs;
using Ddpo.Training;

namespace Ddpo;

/// <summary>
/// Everything a DDPO run needs, as objects: the settings (a preset, a TOML file, <c>key=value</c> overrides, typed edits,
/// or a whole <see cref="DdpoConfig"/>), the model, the prompts, the reward, the device and precision, and what is
/// written. Give it to <see cref="DdpoRun.Create"/>. Anything left null comes from the config, whose defaults are
/// the <c>compressibility</c> preset on the built-in model (sized for it: <see cref="RunConfigLayers"/>).
/// </summary>
public sealed class DdpoTrainingOptions
{
    /// <summary>A preset (<see cref="ConfigPresets.Names"/>; <c>a+b</c> applies both); null: <c>compressibility</c> unless <see cref="ConfigFile"/> is given.</summary>
    public string? Preset { get; set; }

    /// <summary>A TOML or JSON config file with ddpo-pytorch's key names, applied over the preset.</summary>
    public string? ConfigFile { get; set; }

    /// <summary><c>key=value</c> overrides (values as TOML, as <c>ddpo train --set</c>), applied last.</summary>
    public IList<string> Set { get; init; } = new List<string>();

    /// <summary>Typed edits of the layered config (after <see cref="Set"/>), e.g. <c>c => c.Train.LearningRate = 1e-3</c>.</summary>
    public Action<DdpoConfig>? Configure { get; set; }

    /// <summary>A whole config, used as it is (then <see cref="Preset"/>, <see cref="ConfigFile"/> and <see cref="Set"/> must be empty).</summary>
    public DdpoConfig? Config { get; set; }

    /// <summary>A diffusers pipeline folder, or <c>"builtin"</c>; null: the config's <c>model</c> (the built-in model by default).</summary>
    public string? Model { get; set; }

    /// <summary><c>num_epochs</c>, when given.</summary>
    public int? Epochs { get; set; }

    /// <summary>
    /// The prompts, as a list: written to <c>RUN/prompts.txt</c> and recorded as <c>prompt_fn = "file:..."</c>, so the
    /// run can be rebuilt (<c>ddpo eval</c>). Null: <see cref="Prompts"/> or the config's <c>prompt_fn</c>.
    /// </summary>
    public IReadOnlyList<string>? PromptList { get; set; }

    /// <summary>
    /// The prompts, as an object; recorded as <c>prompt_fn = "code:TYPE"</c> (not rebuildable from the config).
    /// Null: <see cref="PromptList"/> or the config's <c>prompt_fn</c>.
    /// </summary>
    public IPromptSource? Prompts { get; set; }

    /// <summary>
    /// The reward to optimise, e.g. a <see cref="DelegateReward"/>; recorded as <c>reward_fn = "code:NAME"</c> (not
    /// rebuildable from the config). The caller keeps ownership (it is not disposed). Null: the config's <c>reward_fn</c>.
    /// </summary>
    public IRewardFunction? Reward { get; set; }

    /// <summary>
    /// Rewards computed on every epoch's images and logged as <c>watch_NAME_mean</c> but not optimised; recorded as
    /// <c>watch_rewards = "code:NAME,..."</c>. Null: the config's <c>watch_rewards</c>.
    /// </summary>
    public IReadOnlyList<IRewardFunction>? WatchRewards { get; set; }

    /// <summary><c>cpu</c>, <c>cuda</c>, <c>cuda:N</c> or <c>auto</c>; null: the config's <c>device</c>. The device used is recorded.</summary>
    public string? Device { get; set; }

    /// <summary><c>auto</c>, <c>fp32</c>, <c>fp16</c> or <c>bf16</c> for the frozen weights; null: <c>pretrained.dtype</c>. The dtype used is recorded.</summary>
    public string? DType { get; set; }

    /// <summary>The run folder; null: <c>runs/PRESET-TIME</c>.</summary>
    public string? RunDirectory { get; set; }

    /// <summary>
    /// Which CPU kernels libtorch runs (null: <c>DDPO_CPU_KERNELS</c>, else auto). Takes full effect only when the run
    /// is created before the process's first tensor (see <see cref="Runtime.CpuKernels"/>).
    /// </summary>
    public Runtime.CpuKernelProfile? CpuKernels { get; set; }

    /// <summary>
    /// Check float32 gradients against float64 on the device before the first epoch (once per process and device), and
    /// refuse to train on wrong ones with <see cref="Diagnostics.GradientCheckFailedException"/>. Default true.
    /// </summary>
    public bool CheckGradients { get; set; } = true;

    /// <summary>Continue the run in <see cref="RunDirectory"/> from its newest checkpoint.</summary>
    public bool Resume { get; set; }

    /// <summary>
    /// The processes this run is one of (data-parallel training; see docs/distributed.md): null for a single process,
    /// or <see cref="Distributed.ProcessGroups.FromEnvironment"/> under <c>mpirun</c> / <c>srun</c>. The presets' totals
    /// are shared among the processes, each process takes the device of its local rank, and only rank 0 writes the
    /// run folder.
    /// </summary>
    public Distributed.IProcessGroup? ProcessGroup { get; set; }

    /// <summary>What is written besides metrics, config and the final weights (default: image grids and checkpoints; <c>ddpo train</c> adds the report and TensorBoard writers of <c>Ddpo.Reporting</c>: <c>RunOutputs.All.WithReports()</c>).</summary>
    public RunOutputs Outputs { get; set; } = RunOutputs.All;

    /// <summary>Observers of the run (progress, per-epoch metrics, messages), called in order before the writers of <see cref="Outputs"/>.</summary>
    public IList<ITrainingObserver> Observers { get; init; } = new List<ITrainingObserver>();

    /// <summary>Called with each epoch's metrics (a shortcut for an observer).</summary>
    public Action<EpochMetrics>? OnEpoch { get; set; }

    /// <summary>Called with messages (checkpoints, resumes, reward retries, warnings; a shortcut for an observer).</summary>
    public Action<string>? OnMessage { get; set; }
}
