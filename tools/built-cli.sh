# Sourced by the tools' scripts: `built_cli NAME` prints the CLI that `dotnet build src/Ddpo.Cli -c Release` makes, or
# says (as NAME) how to build it and fails.
built_cli() {
  local cli
  cli="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src/Ddpo.Cli/bin/Release/net10.0/ddpo"
  [ -x "$cli" ] || { echo "$1: no $cli: run 'dotnet build src/Ddpo.Cli -c Release' first, or pass --ddpo" >&2; return 2; }
  echo "$cli"
}
