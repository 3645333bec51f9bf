using System.CommandLine;
using Ddpo.Cli.Commands;
using Ddpo.Models.Loading;
using Spectre.Console;

namespace Ddpo.Cli;

/// <summary>The <c>ddpo</c> command line: builds the command tree and turns known failures into clear messages.</summary>
public static class CliApp
{
    /// <summary>Exit code for bad input (config, weights, arguments).</summary>
    public const int BadInput = 2;

    /// <summary>Exit code for an unexpected internal error (a bug): reported with its stack trace, never an abort.</summary>
    public const int InternalError = 1;

    /// <summary>Exit code when the reward failed after retries (the epoch's samples are kept for --resume).</summary>
    public const int RewardFailed = 3;

    /// <summary>
    /// Exit code when training stopped because it became non-finite (the weights, or <c>train.max_skipped_steps</c>
    /// skipped steps in a row); the run folder's newest checkpoint is the last good one and the message names it.
    /// </summary>
    public const int TrainingStopped = 3;

    /// <summary>Builds the root command with every sub-command.</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("ddpo: reinforcement-learning fine-tuning of text-to-image diffusion models (DDPO)");
        foreach (var command in CommandCatalog.All())
        {
            root.Add(command);
        }
        return root;
    }

    /// <summary>Parses and runs <paramref name="args"/>; returns the process exit code.</summary>
    public static int Run(string[] args)
    {
        // Resident memory stays near what is live instead of glibc's high-water mark (see NativeHeap).
        Ddpo.Runtime.NativeHeap.ReturnLargeBlocksToTheSystem();
        try
        {
            var parse = BuildRoot().Parse(args);
            int code = parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
            Ddpo.Distributed.ProcessGroups.Shutdown();
            return code;
        }
        catch (Exception e) when (IsUserError(e))
        {
            AnsiConsole.Console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            // One of several processes: end the whole job, naming this rank (the others would wait forever).
            Ddpo.Distributed.ProcessGroups.AbortOnFailure(e.Message, BadInput);
            return BadInput;
        }
        catch (Ddpo.Training.RewardFailedException e)
        {
            AnsiConsole.Console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            Ddpo.Distributed.ProcessGroups.AbortOnFailure(e.Message, RewardFailed);
            return RewardFailed;
        }
        catch (Exception e) when (e is Ddpo.Training.TrainingStoppedException or Ddpo.Training.NonFiniteTensorException)
        {
            AnsiConsole.Console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            Ddpo.Distributed.ProcessGroups.AbortOnFailure(e.Message, TrainingStopped);
            return TrainingStopped;
        }
        catch (Exception e)
        {
            // Not the user's input: keep the trace for the bug report, but exit normally (an unhandled
            // exception aborts the process: SIGABRT, exit 134, and a core dump on some systems).
            Console.Error.WriteLine($"internal error (please report): {e}");
            Ddpo.Distributed.ProcessGroups.AbortOnFailure($"{e.GetType().Name}: {e.Message}", InternalError);
            return InternalError;
        }
    }

    private static bool IsUserError(Exception e) =>
        e is ModelLoadException or ConfigException or ArgumentException or FileNotFoundException
            or DirectoryNotFoundException or InvalidDataException or UserFacingException
            or Ddpo.Training.WeightsDivergedException or DllNotFoundException
            // Readers of run files (metrics.jsonl, prompts.json, checkpoint state) report malformed content
            // as a FormatException whose message names the file and line.
            or FormatException;
}

/// <summary>An error caused by the user's input or environment, shown without a stack trace.</summary>
public sealed class UserFacingException(string message, Exception? inner = null) : Exception(message, inner);
