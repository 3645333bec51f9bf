using System.Diagnostics;
using System.Text;
using Xunit;

namespace Ddpo.Tests.Support;

/// <summary>
/// Runs the built <c>ddpo</c> command as separate processes: alone (<c>dotnet ddpo.dll ...</c>) or as an MPI job
/// (<c>mpirun --allow-run-as-root --oversubscribe -np N dotnet ddpo.dll ...</c>), always under a hard timeout after
/// which the whole process tree is killed and the test fails: a hung job never hangs the suite.
/// </summary>
public static class CliProcess
{
    /// <summary>The built CLI next to the tests.</summary>
    public static string Dll
    {
        get
        {
            var cli = Path.Combine(AppContext.BaseDirectory, "ddpo.dll");
            Assert.True(File.Exists(cli), cli);
            return cli;
        }
    }

    /// <summary>
    /// The <c>mpirun</c> on the PATH; fails the test with how to install it where absent (CI's .ci/run installs it):
    /// the multi-process tests are not skipped silently.
    /// </summary>
    public static string Mpirun()
    {
        var found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);
        Assert.True(found is not null,
            "mpirun was not found on the PATH: the multi-process tests need Open MPI 4 (Debian/Ubuntu: apt-get install openmpi-bin; .ci/run installs it)");
        return found!;
    }

    /// <summary>A started job: its process, and its stdout + stderr so far.</summary>
    public sealed class Job(Process process, StringBuilder output) : IDisposable
    {
        /// <summary>The process (mpirun, or dotnet for one process).</summary>
        public Process Process => process;

        /// <summary>What the job printed so far (stdout and stderr interleaved).</summary>
        public string Output { get { lock (output) return output.ToString(); } }

        /// <summary>Waits for the end; past <paramref name="timeout"/> kills the whole tree and fails the test.</summary>
        public async Task<(int Code, string Output)> WaitAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"the job did not end within {timeout.TotalSeconds} s and was killed; its output:\n{Output}");
            }
            process.WaitForExit();
            return (process.ExitCode, Output);
        }

        /// <inheritdoc />
        public void Dispose()
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.Dispose();
        }
    }

    /// <summary>Starts <c>ddpo <paramref name="args"/></c> as <paramref name="processes"/> processes (1: no mpirun).</summary>
    public static Job Start(int processes, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(processes == 1 ? "dotnet" : Mpirun())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (processes != 1)
        {
            foreach (var a in new[] { "--allow-run-as-root", "--oversubscribe", "-np", processes.ToString(), "dotnet" }) start.ArgumentList.Add(a);
        }
        start.ArgumentList.Add(Dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["COLUMNS"] = "400";
        // The child chooses its own CPU kernels, as a user's fresh process does: it does not inherit the safe kernels'
        // start-up variables this test process set for itself (on an AMD Zen 5).
        foreach (var name in Ddpo.Runtime.CpuKernels.VariablesSetHere) start.Environment.Remove(name);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        var output = new StringBuilder();
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new Job(process, output);
    }

    /// <summary>Runs a job to its end (see <see cref="Start"/>, <see cref="Job.WaitAsync"/>).</summary>
    public static async Task<(int Code, string Output)> RunAsync(int processes, IEnumerable<string> args, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        using var job = Start(processes, args, environment);
        return await job.WaitAsync(timeout);
    }
}
