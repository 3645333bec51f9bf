using Ddpo.Runs;
using Ddpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

public sealed class LossScalerTests
{
    private static byte[] OptimizerState(OptimizerHelper optimizer)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) optimizer.save_state_dict(writer);
        return stream.ToArray();
    }

    /// <summary>Backward of <c>scaler.Scaled(sum(w * factors))</c>: the gradient of w is factors x scale.</summary>
    private static void Backward(LossScaler scaler, Parameter w, float[] factors)
    {
        using var scope = NewDisposeScope();
        scaler.Scaled((w * tensor(factors)).sum()).backward();
    }

    [Fact]
    public void AnInfiniteGradientSkipsTheStepAndHalvesTheScale()
    {
        var w = new Parameter(tensor(new[] { 0.5f, -1.0f, 2.0f }));
        using var optimizer = optim.AdamW([w], 1e-2);
        var scaler = new LossScaler(enabled: true, growthInterval: 3);
        Backward(scaler, w, [1e-3f, -2e-3f, 5e-4f]);
        Assert.True(scaler.Step([w], optimizer, maxGradNorm: 1.0));
        Assert.Equal(65536f, scaler.Scale);
        Assert.Equal(1, scaler.GrowthTracker);

        var weightsBefore = w.detach().clone();
        var stateBefore = OptimizerState(optimizer);
        Backward(scaler, w, [1e-3f, float.PositiveInfinity, 5e-4f]);
        Assert.False(scaler.Step([w], optimizer, maxGradNorm: 1.0));
        Assert.Equal(32768f, scaler.Scale);
        Assert.Equal(0, scaler.GrowthTracker);
        Assert.Equal(weightsBefore.data<float>().ToArray(), w.data<float>().ToArray());
        Assert.Equal(stateBefore, OptimizerState(optimizer));

        // NaN is skipped too; then training goes on with the smaller scale.
        Backward(scaler, w, [float.NaN, 0f, 0f]);
        Assert.False(scaler.Step([w], optimizer, maxGradNorm: 1.0));
        Assert.Equal(16384f, scaler.Scale);
        Backward(scaler, w, [1e-3f, -2e-3f, 5e-4f]);
        Assert.True(scaler.Step([w], optimizer, maxGradNorm: 1.0));
        Assert.NotEqual(weightsBefore.data<float>().ToArray(), w.data<float>().ToArray());
        Assert.NotEqual(stateBefore, OptimizerState(optimizer));
    }

    [Fact]
    public void TheScaleDoublesAfterGrowthIntervalGoodStepsAndStaysFinite()
    {
        var w = new Parameter(tensor(new[] { 1.0f, 2.0f }));
        using var optimizer = optim.SGD([w], 1e-3);
        var scaler = new LossScaler(enabled: true, initScale: 4f, growthInterval: 3);
        var seen = new List<(float, int)>();
        for (int i = 0; i < 7; i++)
        {
            Backward(scaler, w, [1f, 1f]);
            Assert.True(scaler.Step([w], optimizer, 0));
            seen.Add((scaler.Scale, scaler.GrowthTracker));
        }
        Assert.Equal([(4f, 1), (4f, 2), (8f, 0), (8f, 1), (8f, 2), (16f, 0), (16f, 1)], seen);

        // GradScaler keeps the scale when doubling it would overflow float32.
        var big = new LossScaler(enabled: true, initScale: float.MaxValue / 1.5f, growthInterval: 1);
        big.Update(gradientsFinite: true);
        Assert.Equal(float.MaxValue / 1.5f, big.Scale);
    }

    [Fact]
    public void GradientsAreUnscaledBeforeClipping()
    {
        // Unscaled gradient norm 0.5 < max_grad_norm 1: no clipping, and SGD (lr 1) moves w by exactly the true
        // gradient. Clipping the scaled gradients (norm 0.5 x 2^16) would have shrunk the update 2^16-fold.
        var w = new Parameter(tensor(new[] { 1.0f, 1.0f }));
        using var optimizer = optim.SGD([w], 1.0);
        var scaler = new LossScaler(enabled: true);
        Backward(scaler, w, [0.3f, 0.4f]);
        Assert.True(scaler.Step([w], optimizer, maxGradNorm: 1.0));
        Assert.Equal(new[] { 0.7f, 0.6f }, w.data<float>().ToArray());
    }

    [Fact]
    public void ADisabledScalerChangesNothing()
    {
        var scaler = new LossScaler(enabled: false);
        Assert.Equal(1f, scaler.Scale);
        using var loss = tensor(3f);
        using var same = scaler.Scaled(loss);
        Assert.Equal(3f, same.item<float>());
        var state = new TrainingState();
        scaler.SaveTo(state);
        Assert.Null(state.LossScale);
    }

    [Fact]
    public void StateRoundTripsThroughTheCheckpointState()
    {
        var scaler = new LossScaler(enabled: true, initScale: 1024f, growthInterval: 5);
        scaler.Update(false);
        scaler.Update(true);
        scaler.Update(true);
        var state = new TrainingState { Epoch = 1 };
        scaler.SaveTo(state);
        var restored = new LossScaler(enabled: true, growthInterval: 5);
        restored.LoadFrom(TrainingState.FromJson(state.ToJson(), "state.json"), "state.json");
        Assert.Equal((512f, 2), (restored.Scale, restored.GrowthTracker));

        // A checkpoint made without loss scaling keeps the initial scale; a malformed one names file and key.
        var fresh = new LossScaler(enabled: true);
        fresh.LoadFrom(new TrainingState(), "state.json");
        Assert.Equal(65536f, fresh.Scale);
        var e = Assert.Throws<InvalidDataException>(() => fresh.LoadFrom(new TrainingState { LossScale = -3 }, "ck/state.json"));
        Assert.Contains("ck/state.json", e.Message);
        Assert.Contains("loss_scale", e.Message);
    }

    [Theory]
    [InlineData("auto", ScalarType.Float16, true)]
    [InlineData("auto", ScalarType.BFloat16, false)]
    [InlineData("auto", ScalarType.Float32, false)]
    [InlineData("dynamic", ScalarType.BFloat16, true)]
    [InlineData("off", ScalarType.Float16, false)]
    public void AutoScalesExactlyFp16Models(string setting, ScalarType unetDType, bool enabled)
    {
        var train = new Ddpo.Config.TrainConfig { LossScaling = setting, LossScaleInit = 1024, LossScaleGrowthInterval = 7 };
        var scaler = LossScaler.For(train, unetDType);
        Assert.Equal(enabled, scaler.Enabled);
        Assert.Equal(enabled ? 1024f : 1f, scaler.Scale);
        Assert.Equal(7, scaler.GrowthInterval);
    }
}
