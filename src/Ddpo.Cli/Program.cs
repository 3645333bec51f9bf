return Ddpo.Cli.CliApp.Run(args);
