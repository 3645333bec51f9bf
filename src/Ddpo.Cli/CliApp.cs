using System.CommandLine;
using Ddpo.Base;
using Ddpo.Cli.Commands;
using Ddpo.Models.Loading;
using Spectre.Console;

namespace Ddpo.Cli;

/// <summary>The <c>ddpo</c> command line: builds the command tree and turns known failures into clear messages.</summary>
internal static class CliApp
{
    /// <summary>Exit code for bad input (config, weights, arguments).</summary>
    public const int BadInput = 2;

    /// <summary>Exit code for an unexpected internal error (a bug): reported with its stack trace, never an abort.</summary>
    public const int InternalError = 1;

    /// <summary>Exit code when the reward failed after retries (the epoch's samples are kept for --resume).</summary>
    public const int RewardFailed = 3;

    /// <summary>Exit code when training was refused because this device's float32 gradients are wrong (<c>ddpo doctor</c> says more).</summary>
    public const int WrongGradients = 3;

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

    /// <summary>The console width assumed where output is redirected: wide enough that no line is ever wrapped.</summary>
    public const int UnwrappedWidth = 1_000_000;

    /// <summary>
    /// Where standard output is not a terminal (redirected to a file or a pipe), makes <see cref="AnsiConsole"/> write
    /// plain text (no colours, no cursor movement, not interactive, so no live progress bars) and never wrap a line:
    /// Spectre.Console would otherwise break lines at its assumed 80 columns, in the middle of a value. Called by the
    /// program's entry point (not by <see cref="Run"/>, which tests call in-process with a console of their own).
    /// </summary>
    public static void UnwrapRedirectedOutput()
    {
        if (Console.IsOutputRedirected) AnsiConsole.Console = UnwrappedConsole(Console.Out);
    }

    /// <summary>A plain, non-interactive console writing to <paramref name="writer"/> that does not wrap lines.</summary>
    public static IAnsiConsole UnwrappedConsole(TextWriter writer)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = UnwrappedWidth;
        return console;
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
        catch (Exception e) when (StopCode(e) is int code)
        {
            // The run could not go on (wrong gradients, a failed reward, non-finite training): the message says why and what to do.
            AnsiConsole.Console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            Ddpo.Distributed.ProcessGroups.AbortOnFailure(e.Message, code);
            return code;
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

    private static int? StopCode(Exception e) => e switch
    {
        Ddpo.Diagnostics.GradientCheckFailedException => WrongGradients,
        Ddpo.Training.RewardFailedException => RewardFailed,
        Ddpo.Training.TrainingStoppedException or Ddpo.Runs.NonFiniteTensorException => TrainingStopped,
        _ => null,
    };

    private static bool IsUserError(Exception e) =>
        e is ModelLoadException or ConfigException or ArgumentException or FileNotFoundException
            or DirectoryNotFoundException or InvalidDataException or UserFacingException
            or Ddpo.Distributed.WeightsDivergedException or DllNotFoundException
            // Readers of run files (metrics.jsonl, prompts.json, checkpoint state) report malformed content
            // as a FormatException whose message names the file and line.
            or FormatException;
}

/// <summary>An error caused by the user's input or environment, shown without a stack trace.</summary>
internal sealed class UserFacingException(string message, Exception? inner = null) : Exception(message, inner);
