using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Rewards.ImageReward;

/// <summary>
/// ImageReward's <c>MLP</c> head (<c>ImageReward.py</c>): Linear layers at <c>layers.{0,2,4,6,7}</c> (input → 1024 → 128 → 64 →
/// 16 → 1) with dropouts 0.2, 0.2, 0.1 between the first four and no activations (its ReLUs are commented out upstream);
/// dropout is identity because the module stays in eval mode.
/// </summary>
internal sealed class ImageRewardMlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // the state-dict name
    private readonly Sequential layers;
#pragma warning restore IDE1006

    public ImageRewardMlp(int input, IReadOnlyList<int> hidden, Device? device = null) : base("mlp")
    {
        layers = nn.Sequential(
            ("0", nn.Linear(input, hidden[0], device: device)),
            ("1", nn.Dropout(0.2)),
            ("2", nn.Linear(hidden[0], hidden[1], device: device)),
            ("3", nn.Dropout(0.2)),
            ("4", nn.Linear(hidden[1], hidden[2], device: device)),
            ("5", nn.Dropout(0.1)),
            ("6", nn.Linear(hidden[2], hidden[3], device: device)),
            ("7", nn.Linear(hidden[3], 1, device: device)));
        RegisterComponents();
        eval();
    }

    /// <summary>[B, 1] of features [B, input].</summary>
    public override Tensor forward(Tensor features) => layers.forward(features);
}
