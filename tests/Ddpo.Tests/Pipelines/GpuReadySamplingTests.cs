using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Prompts;
using Ddpo.Rewards;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Pipelines;

/// <summary>
/// The sampling loop with its host inputs moved to the device before it (timesteps, pre-drawn noise) and the
/// per-epoch prompt-embedding cache: same numbers as the step-by-step loop, each prompt encoded once per epoch.
/// </summary>
public sealed class GpuReadySamplingTests
{
    [Fact]
    public void SamplingEqualsTheStepByStepLoopBitForBit()
    {
        using var pipe = TextToImagePipeline.FromPretrained(TinyModels.Latent);
        var options = new SamplingOptions { NumSteps = 3, GuidanceScale = 4.0, Eta = 1.0, FinalStep = DdimFinalStep.Ddpo, RecordTrajectory = true };
        string[] prompts = ["a cat", "a dog riding a bike"];
        using var result = pipe.Sample(prompts, options, new Generator(21));

        // The loop as it was: a scalar timestep tensor and a fresh noise draw per step, from the same generator.
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var gen = new Generator(21);
        var embeds = pipe.EncodePrompts(prompts);
        var negative = pipe.EncodePrompts([""]).expand(2, -1, -1).contiguous();
        var shape = new long[] { 2, pipe.LatentChannels, 16, 16 };
        var latents = randn(shape, generator: gen);
        pipe.Scheduler.SetTimesteps(options.NumSteps);
        var logProbs = new List<Tensor>();
        foreach (var step in pipe.Scheduler.Timesteps)
        {
            var t = tensor(step, dtype: ScalarType.Int64);
            var eps = pipe.PredictNoise(latents, t, embeds, negative, options.GuidanceScale);
            var r = pipe.Scheduler.Step(eps, t, latents, options.Eta, noise: randn(shape, generator: gen), finalStep: options.FinalStep);
            latents = r.PrevSample;
            logProbs.Add(r.LogProb);
        }
        TensorAssert.Close(latents, result.Trajectory!.Latents[.., ^1], atol: 0, rtol: 0, what: "final latents");
        TensorAssert.Close(stack(logProbs, 1), result.Trajectory.LogProbs, atol: 0, rtol: 0, what: "log-probs");
        TensorAssert.Close(pipe.DecodeToImages(latents), result.Images, atol: 0, rtol: 0, what: "images");
    }

    [Fact]
    public void TheCacheEncodesEachDistinctPromptOnceWithTheEncodersNumbers()
    {
        using var pipe = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        using var cache = new ConditioningCache(pipe.Policy);
        using var firstRows = cache.Get(["a cat", "a cat", "a dog", ""]);
        var first = firstRows[StableDiffusionPolicy.PromptEmbeds];
        Assert.Equal((3, 1), (cache.EncodedCount, cache.EncoderCalls));
        using var secondRows = cache.Get(["a dog", "a cat"]);
        var second = secondRows[StableDiffusionPolicy.PromptEmbeds];
        Assert.Equal((3, 1), (cache.EncodedCount, cache.EncoderCalls));
        using var fresh = pipe.EncodePrompts(["a cat", "a cat", "a dog", ""]);
        TensorAssert.Close(fresh, first, atol: 1e-5, rtol: 1e-5, what: "cached embeddings");
        TensorAssert.Close(fresh.index_select(0, tensor(new long[] { 2, 0 })), second, atol: 1e-5, rtol: 1e-5, what: "reordered");
        using var third = cache.Get(["a frog"]);
        Assert.Equal((4, 2), (cache.EncodedCount, cache.EncoderCalls));
    }

    [Fact]
    public async Task AnEpochEncodesEachDistinctPromptOnce()
    {
        using var pipe = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        // 3 batches of 4, groups of 4: 3 distinct prompts, plus the negative prompt.
        var config = DdpoConfig.Load(null, null,
            ["sample.num_steps=2", "sample.batch_size=4", "sample.samples_per_epoch=12", "sample.group_size=4", "prompt_fn=\"simple_animals\""]);
        var sampler = new EpochSampler(pipe.Policy, config, PromptSources.Create("simple_animals"), new JpegCompressibilityReward(), NullTrainingObserver.Instance);
        var sampled = await sampler.SampleAsync(0);
        using var samples = sampled.Samples;
        Assert.Equal(12, samples.Count);
        int distinct = samples.Prompts.Distinct().Count();
        Assert.Equal(distinct + 1, sampled.PromptsEncoded);
        Assert.True(distinct <= 3);
    }

    [Fact]
    public async Task InitSameNoiseStartsEveryGroupFromOneNoiseWhateverTheBatches()
    {
        using var pipe = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        // Groups of 3 over batches of 2: group 1 spans batches 0 and 1. DanceGRPO's --init_same_noise.
        string[] common = ["sample.num_steps=2", "sample.samples_per_epoch=6", "sample.group_size=3", "prompt_fn=\"simple_animals\"", "seed=5"];
        async Task<float[][]> FirstLatents(string[] extra)
        {
            var config = DdpoConfig.Load(null, null, [.. common, .. extra]);
            var sampler = new EpochSampler(pipe.Policy, config, PromptSources.Create("simple_animals"), new JpegCompressibilityReward(), NullTrainingObserver.Instance);
            using var samples = (await sampler.SampleAsync(1)).Samples;
            Assert.Equal(6, samples.Count);
            return Enumerable.Range(0, 6).Select(i => samples.Latents[i, 0].flatten().data<float>().ToArray()).ToArray();
        }
        var shared = await FirstLatents(["sample.init_same_noise=true", "sample.batch_size=2"]);
        Assert.Equal(shared[0], shared[1]);
        Assert.Equal(shared[0], shared[2]);
        Assert.Equal(shared[3], shared[4]);
        Assert.Equal(shared[3], shared[5]);
        Assert.NotEqual(shared[0], shared[3]);
        // The batch split does not change a group's noise.
        var oneBatch = await FirstLatents(["sample.init_same_noise=true", "sample.batch_size=6"]);
        Assert.Equal(shared[0], oneBatch[0]);
        Assert.Equal(shared[5], oneBatch[5]);
        // Off (the default): every image its own x_T.
        var own = await FirstLatents(["sample.batch_size=2"]);
        Assert.NotEqual(own[0], own[1]);
    }
}
