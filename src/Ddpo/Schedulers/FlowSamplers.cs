using Ddpo.Base;

namespace Ddpo.Schedulers;

/// <summary>The flow-matching step a sampler takes.</summary>
internal enum FlowSdeType
{
    /// <summary>Flow-GRPO's SDE (<see cref="FlowSdeSampler"/>), <c>flow_sde</c>.</summary>
    FlowSde,

    /// <summary>Flow-Factory's Dance-SDE (<see cref="DanceSdeSampler"/>), <c>dance_sde</c>.</summary>
    DanceSde,

    /// <summary>Flow-Factory's coefficients-preserving sampler (<see cref="CpsSampler"/>), <c>cps</c>.</summary>
    Cps,

    /// <summary>The deterministic Euler step (<see cref="FlowOdeSampler"/>), <c>ode</c>.</summary>
    Ode,
}

/// <summary>The flow-matching samplers by their config names.</summary>
internal static class FlowSamplers
{
    /// <summary>The accepted names, in the order errors list them.</summary>
    public static readonly IReadOnlyList<string> Names = ["flow_sde", "dance_sde", "cps", "ode"];

    /// <summary>The type of a config name; null when unknown.</summary>
    public static FlowSdeType? TryParse(string name) => name switch
    {
        "flow_sde" => FlowSdeType.FlowSde,
        "dance_sde" => FlowSdeType.DanceSde,
        "cps" => FlowSdeType.Cps,
        "ode" => FlowSdeType.Ode,
        _ => null,
    };

    /// <summary>The config name of <paramref name="type"/>.</summary>
    public static string NameOf(FlowSdeType type) => Names[(int)type];

    /// <summary>
    /// The sampler named <paramref name="sdeType"/> (<c>flow_sde</c>, <c>dance_sde</c>, <c>cps</c>, <c>ode</c>) over
    /// <paramref name="scheduler"/>, with the dynamic shift <paramref name="mu"/> when the scheduler shifts dynamically
    /// (FLUX). Another name is a <see cref="ConfigException"/> listing the names.
    /// </summary>
    public static FlowSampler Create(string sdeType, FlowMatchEulerDiscreteScheduler scheduler, double? mu = null) =>
        Create(TryParse(sdeType) ?? throw new ConfigException(
            $"unknown flow-matching SDE type \"{sdeType}\" (expected one of: {string.Join(", ", Names)})"), scheduler, mu);

    /// <summary>The sampler of <paramref name="type"/> over <paramref name="scheduler"/>.</summary>
    public static FlowSampler Create(FlowSdeType type, FlowMatchEulerDiscreteScheduler scheduler, double? mu = null) => type switch
    {
        FlowSdeType.FlowSde => new FlowSdeSampler(scheduler, mu),
        FlowSdeType.DanceSde => new DanceSdeSampler(scheduler, mu),
        FlowSdeType.Cps => new CpsSampler(scheduler, mu),
        FlowSdeType.Ode => new FlowOdeSampler(scheduler, mu),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };
}
