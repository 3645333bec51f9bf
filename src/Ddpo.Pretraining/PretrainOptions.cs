namespace Ddpo.Pretraining;

/// <summary>Settings of <see cref="DenoisingPretrainer"/> (ordinary denoising score matching).</summary>
internal sealed record PretrainOptions
{
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 2000;
    /// <summary>Images per step.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Peak AdamW learning rate (linear warm-up, cosine decay to 10%).</summary>
    public double LearningRate { get; init; } = 2e-3;
    /// <summary>Warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 1e-4;
    /// <summary>Fraction of captions replaced by the empty prompt (teaches the unconditional branch for guidance).</summary>
    public double CaptionDropout { get; init; } = 0.1;
    /// <summary>Exponential-moving-average decay of the saved weights (0 disables).</summary>
    public double EmaDecay { get; init; } = 0.995;
    /// <summary>Also train the text encoder.</summary>
    public bool TrainTextEncoder { get; init; } = true;
    /// <summary>Seed for batch order, noise and timesteps.</summary>
    public long Seed { get; init; } = 0;
    /// <summary>Log a loss line every this many steps.</summary>
    public int LogEvery { get; init; } = 50;
    /// <summary>Save the model every this many steps (and at the end).</summary>
    public int SaveEvery { get; init; } = 250;
    /// <summary>Gradient-norm clip.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Checks the values, naming the option at fault.</summary>
    public void Validate()
    {
        if (Steps < 1) throw new ArgumentException($"--steps must be >= 1, got {Steps}");
        if (BatchSize < 1) throw new ArgumentException($"--batch must be >= 1, got {BatchSize}");
        if (!(LearningRate > 0)) throw new ArgumentException($"--lr must be > 0, got {LearningRate}");
        if (CaptionDropout is < 0 or > 1) throw new ArgumentException($"--caption-dropout must be in [0, 1], got {CaptionDropout}");
        if (EmaDecay is < 0 or >= 1) throw new ArgumentException($"--ema must be in [0, 1), got {EmaDecay}");
    }
}
