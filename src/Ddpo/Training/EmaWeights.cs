using Ddpo.Config;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The exponential moving average of the trainable weights (<c>train.ema</c>), as Flow-GRPO's EMAModuleWrapper
/// (yifan123/flow_grpo <c>flow_grpo/ema.py</c> at ac4c86e, used by <c>scripts/train_sd3.py</c> with decay 0.9 and
/// update_step_interval 8): after optimizer step n (n counted from 1 over the whole run) the average moves by
/// ema += (1 - d) (theta - ema) with d = min((1 + n) / (10 + n), decay) when (n + 1) is a multiple of the interval. It
/// starts as a copy of the initial weights, is saved in checkpoints (<see cref="CheckpointPrefix"/>) and is what the
/// eval images, the exported weights and <c>ddpo eval</c> use.
/// </summary>
internal sealed class EmaWeights(IReadOnlyList<Parameter> parameters, double decay, int updateInterval) : IDisposable
{
    /// <summary>The key prefix of the average's tensors in a checkpoint (<c>ema.0000</c>, ...).</summary>
    public const string CheckpointPrefix = "ema";

    private readonly ParameterCopy _average = new(parameters);

    /// <summary>The average of a run with <c>train.ema</c>, or null when it is off.</summary>
    public static EmaWeights? For(DdpoConfig config, TrainableWeights weights) =>
        config.Train.Ema ? new EmaWeights(weights.Parameters, config.Train.EmaDecay, config.Train.EmaUpdateInterval) : null;

    /// <summary>The averaged values, in the parameters' order.</summary>
    public ParameterCopy Average => _average;

    /// <summary>EMAModuleWrapper.get_current_decay: min((1 + n) / (10 + n), decay).</summary>
    public static double CurrentDecay(long optimizationStep, double decay) => Math.Min((1.0 + optimizationStep) / (10.0 + optimizationStep), decay);

    /// <summary>Whether step <paramref name="optimizationStep"/> updates the average: (n + 1) % interval == 0.</summary>
    public static bool Updates(long optimizationStep, int updateInterval) => (optimizationStep + 1) % updateInterval == 0;

    /// <summary>The update after optimizer step <paramref name="optimizationStep"/> (the run's count of steps taken, this one included).</summary>
    public void Step(long optimizationStep)
    {
        if (!Updates(optimizationStep, updateInterval)) return;
        float oneMinusDecay = (float)(1 - CurrentDecay(optimizationStep, decay));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        for (int i = 0; i < parameters.Count; i++)
        {
            var e = _average.Values[i];
            e.add_((parameters[i] - e).mul_(oneMinusDecay));
        }
    }

    /// <summary>
    /// Loads a checkpoint's tensors into <paramref name="weights"/> for evaluation (<c>ddpo eval</c>): the average when
    /// the run had <c>train.ema</c>, as its eval images and exported weights are, else the trained weights. A missing
    /// tensor is an error naming <paramref name="source"/>.
    /// </summary>
    public static void LoadForEvaluation(DdpoConfig config, TrainableWeights weights, IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        weights.LoadRawState(tensors, source);
        if (!config.Train.Ema) return;
        using var ema = new ParameterCopy(weights.Parameters);
        ema.Load(tensors, CheckpointPrefix, source);
        using var _ = no_grad();
        for (int i = 0; i < weights.Parameters.Count; i++) weights.Parameters[i].copy_(ema.Values[i]);
    }

    /// <summary>The average in the parameters until disposed (eval images, export).</summary>
    public IDisposable Applied() => _average.Applied(parameters);

    /// <inheritdoc />
    public void Dispose() => _average.Dispose();
}
