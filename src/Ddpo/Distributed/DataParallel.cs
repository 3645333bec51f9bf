namespace Ddpo.Distributed;

/// <summary>
/// How one rank takes part in a data-parallel epoch: which of an optimizer step's micro-batches it trains on,
/// the gradient sum before each step, and the sums of the training statistics. With one process every
/// method is the identity, so a one-process run computes exactly what it computed before data parallelism.
/// <para>
/// Equal results at any scale: the whole epoch is on every rank (<see cref="Ddpo.Training.EpochGather"/>), shuffled with the
/// same generator, and optimizer step k covers the same global micro-batches whatever the number of processes
/// (<c>train.gradient_accumulation_steps</c> x processes of them); rank r trains on the r-th contiguous part.
/// Each loss is divided by the step's global micro-step count, so the summed gradient is the one-process gradient.
/// </para>
/// </summary>
internal sealed class DataParallel
{
    private readonly GradientAllReduce _reduce;

    /// <summary>The processes of the run.</summary>
    public IProcessGroup Group { get; }

    /// <summary>The single process: nothing is shared.</summary>
    public static DataParallel Single { get; } = new(SingleProcessGroup.Instance);

    /// <summary>Data parallelism over <paramref name="group"/>.</summary>
    public DataParallel(IProcessGroup group)
    {
        Group = group;
        _reduce = new GradientAllReduce(group);
    }

    /// <summary>The gradient all-reduce (bytes and seconds of the last step).</summary>
    public GradientAllReduce Gradients => _reduce;

    /// <summary>
    /// This rank's micro-batches [Start, End) of a step covering global micro-batches [<paramref name="first"/>,
    /// <paramref name="end"/>): contiguous parts of ceil(n / processes) (a short step leaves the last ranks fewer or none).
    /// </summary>
    public (int Start, int End) Shard(int first, int end)
    {
        int n = end - first, per = (n + Group.Size - 1) / Group.Size;
        return (first + Math.Min(n, Group.Rank * per), first + Math.Min(n, (Group.Rank + 1) * per));
    }

    /// <summary>Sums the gradients over the ranks (before unscaling, clipping and the step: they see the global gradient).</summary>
    public void SumGradients(IReadOnlyList<TorchSharp.Modules.Parameter> parameters) => _reduce.SumGradients(parameters);

    /// <summary>Element-wise sums over the ranks, in place (statistics of the training phase).</summary>
    public void Sum(double[] values) => Group.AllReduceSum(values);

    /// <summary>
    /// A testing aid for the fault path: with <c>DDPO_FAULT_INJECT=RANK:EPOCH</c> in the environment, that rank
    /// raises at the start of that epoch's training phase, as a rank whose reward or device failed would.
    /// </summary>
    public void MaybeInjectFault(int epoch)
    {
        var spec = Environment.GetEnvironmentVariable("DDPO_FAULT_INJECT");
        if (string.IsNullOrEmpty(spec)) return;
        var parts = spec.Split(':');
        if (parts.Length == 2 && int.TryParse(parts[0], out var rank) && int.TryParse(parts[1], out var at) && rank == Group.Rank && at == epoch)
        {
            throw new InjectedFaultException($"fault injected by DDPO_FAULT_INJECT={spec} at epoch {epoch}");
        }
    }
}

/// <summary>The failure <see cref="DataParallel.MaybeInjectFault"/> raises.</summary>
internal sealed class InjectedFaultException(string message) : Exception(message);
