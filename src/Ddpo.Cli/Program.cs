// Redirected output (a log file, a pipe) gets whole lines: one epoch, one line.
Ddpo.Cli.CliApp.UnwrapRedirectedOutput();
return Ddpo.Cli.CliApp.Run(args);
