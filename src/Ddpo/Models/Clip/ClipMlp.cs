using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>transformers' <c>CLIPMLP</c>: fc1, activation, fc2.</summary>
internal sealed class ClipMlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly Linear fc1;
    private readonly Linear fc2;
#pragma warning restore IDE1006
    private readonly string _activation;

    public ClipMlp(int hidden, int intermediate, string activation, Device? device = null) : base("mlp")
    {
        fc1 = nn.Linear(hidden, intermediate, device: device);
        fc2 = nn.Linear(intermediate, hidden, device: device);
        _activation = activation;
        RegisterComponents();
    }

    /// <summary>transformers' initialisation: fc1 std (2d)^-0.5, fc2 std d^-0.5 (2L)^-0.5, zero biases.</summary>
    public void Initialize(int numLayers, Generator? generator)
    {
        long d = fc1.weight!.shape[1];
        ClipInit.Linear(fc1, Math.Pow(2 * d, -0.5), generator);
        ClipInit.Linear(fc2, Math.Pow(d, -0.5) * Math.Pow(2 * numLayers, -0.5), generator);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = ClipActivation.Apply(_activation, fc1.forward(x));
        return fc2.forward(h).MoveToOuterDisposeScope();
    }
}
