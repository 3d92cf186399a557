"""The `lonja` command's front door: global options, subcommands from each package, exit codes."""
