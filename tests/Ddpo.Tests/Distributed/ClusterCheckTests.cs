using Ddpo.Cli;
using Ddpo.Distributed;
using Ddpo.Tests.Support;
using Ddpo.Training;
using Xunit;

namespace Ddpo.Tests.Distributed;

[Collection(MpiCollection.Name)]
public sealed class ClusterCheckTests
{
    /// <summary>Two ranks find each other: the sum check, both ranks' rows, and the built-in model's step volume.</summary>
    [Fact]
    public async Task ClusterCheckUnderMpirunReportsEveryRank()
    {
        var (code, output) = await CliProcess.RunAsync(2, ["cluster-check", "--megabytes", "1", "--iters", "2", "--threads", "1"], TimeSpan.FromMinutes(2));
        Assert.True(code == 0, output);
        Assert.Contains("2 processes (mpi (mpirun)); all-reduce sum check: ok", output);
        Assert.Contains("cluster_check ranks=2 sum_ok=True", output);
        // The built-in UNet with LoRA rank 8: 57,344 float32 gradients per step.
        Assert.Contains("step_bytes=229376", output);
    }

    /// <summary>Launched by mpirun without Open MPI's library: exit 2 and a message naming the package, no stack trace.</summary>
    [Fact]
    public async Task AMissingOpenMpiLibraryIsAClearError()
    {
        var (code, output) = await CliProcess.RunAsync(1, ["cluster-check"], TimeSpan.FromMinutes(1), new Dictionary<string, string>
        {
            ["OMPI_COMM_WORLD_SIZE"] = "2", ["OMPI_COMM_WORLD_RANK"] = "0", [MpiProcessGroup.LibraryVariable] = "/nonexistent/libmpi.so.40",
        });
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("openmpi-bin", output);
        Assert.Contains("/nonexistent/libmpi.so.40", output);
        Assert.DoesNotContain("   at ", output);
    }

    [Fact]
    public void LaunchersAreDetectedFromTheirEnvironment()
    {
        MpiLaunch? Detect(params (string, string)[] vars)
        {
            var map = vars.ToDictionary(v => v.Item1, v => v.Item2);
            return MpiLaunch.Detect(name => map.GetValueOrDefault(name));
        }
        Assert.Null(Detect());
        Assert.Null(Detect(("SLURM_NTASKS", "4"), ("SLURM_PROCID", "0")));   // an sbatch script, not an srun step
        Assert.Equal(new MpiLaunch("mpirun", 4, 2, 1), Detect(("OMPI_COMM_WORLD_SIZE", "4"), ("OMPI_COMM_WORLD_RANK", "2"), ("OMPI_COMM_WORLD_LOCAL_RANK", "1")));
        Assert.Equal(new MpiLaunch("srun", 8, 5, 1), Detect(("SLURM_NTASKS", "8"), ("SLURM_STEP_ID", "0"), ("SLURM_PROCID", "5"), ("SLURM_LOCALID", "1")));
        Assert.Equal(new MpiLaunch("pmi", 2, 1, 0), Detect(("PMI_SIZE", "2"), ("PMI_RANK", "1")));
    }

    [Fact]
    public void ShardsCoverEveryMicroBatchOnce()
    {
        foreach (int size in new[] { 1, 2, 3, 8 })
        {
            foreach (var (first, end) in new[] { (0, 8), (8, 11), (0, 1), (4, 4) })
            {
                var covered = Enumerable.Range(0, size).SelectMany(rank =>
                {
                    var (s, e) = new DataParallel(new FakeGroup(rank, size)).Shard(first, end);
                    return Enumerable.Range(s, e - s);
                }).ToArray();
                Assert.Equal(Enumerable.Range(first, end - first), covered);
            }
        }
    }

    [Fact]
    public void DifferingWeightsStopTheRunNamingTheRanks()
    {
        using var p = new TorchSharp.Modules.Parameter(TorchSharp.torch.ones(3));
        ulong sum = WeightsChecksum.Of([p]);
        var group = new FakeGroup(0, 3) { Gathered = [(long)sum, (long)sum, (long)sum ^ 1] };
        var e = Assert.Throws<WeightsDivergedException>(() => WeightsChecksum.Verify(group, [p], 4));
        Assert.Contains("after epoch 4", e.Message);
        Assert.Contains("rank 2 differ", e.Message);
        group.Gathered = [(long)sum, (long)sum, (long)sum];
        WeightsChecksum.Verify(group, [p], 4);
        using (TorchSharp.torch.no_grad()) p.add_(1e-7f);
        Assert.NotEqual(sum, WeightsChecksum.Of([p]));
    }

    /// <summary>A group whose all-gather returns set values: the comparison logic without processes.</summary>
    private sealed class FakeGroup(int rank, int size) : IProcessGroup
    {
        public long[] Gathered { get; set; } = [];
        public int Rank => rank;
        public int Size => size;
        public int LocalRank => rank;
        public string Host => "test";
        public string Description => "fake";
        public void AllReduceSum(Span<double> values) => throw new NotSupportedException();
        public void AllReduceSum(Span<float> values) => throw new NotSupportedException();
        public void AllReduceMax(Span<double> values) => throw new NotSupportedException();
        public long[] AllGather(long value) => Gathered;
        public byte[][] AllGatherBytes(ReadOnlySpan<byte> bytes) => throw new NotSupportedException();
        public void Broadcast(Span<byte> values, int root) => throw new NotSupportedException();
        public void Abort(string message, int exitCode) => throw new NotSupportedException();
        public void Dispose() { }
    }
}
