"""`lonja`: parse the global options, build the settings, run a subcommand, turn errors into exit codes.

Each package keeps its own subcommands (`register(commands, common)` in its `cli` module); this module
only wires them together and owns the error-to-exit-code mapping (see `exits`).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from lonja.config import Settings, apply_to_pyro, import_pyro, install_settings, load_settings, parse_addresses
from lonja.config.settings import ns_flags

from . import __version__, exits


def main(argv: Sequence[str] | None = None) -> int:
    """Run `lonja` with `argv` (default: sys.argv[1:]) and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        import_pyro()
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return exits.USAGE
        settings = settings_for(args)
        install_settings(settings)
        apply_to_pyro(settings)
        code = args.run(args, settings)
        sys.stdout.flush()  # a reader that went away shows here, while its error can still be handled
        return code
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else exits.USAGE
    except BaseException as exc:
        code = exits.exit_code(exc)
        if code == exits.BROKEN_PIPE:  # `lonja ... | head`: stop quietly, and leave nothing to flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return code
        print(exits.error_line(exc), file=sys.stderr)
        if debug:
            traceback.print_exception(exc)
            remote = getattr(exc, "remote_traceback", "")
            if remote:
                print("remote traceback:\n" + remote, file=sys.stderr)
        return code


def build_parser() -> argparse.ArgumentParser:
    """The `lonja` parser: global options (accepted before or after the subcommand) and every subcommand."""
    from lonja.clients import cli as clients_cli
    from lonja.clients import shell
    from lonja.clients.web import cli as web_cli
    from lonja.config import cli as config_cli
    from lonja.nameserver import cli as nameserver_cli
    from lonja.services import cli as services_cli

    from . import up

    common = _global_options("ns")

    parser = argparse.ArgumentParser(
        prog="lonja", parents=[_global_options("ns_before_command")],
        description="Call remote objects like local ones: a name server, service hosts and clients on Pyro5.",
        epilog="exit codes: 0 ok, 1 the remote call raised, 2 usage or settings error, "
               "3 name server or service unreachable or unknown name, 4 port or name already in use, "
               "5 access denied (token or TLS identity), 70 a bug in lonja (rerun with --debug)")
    parser.add_argument("--version", action="version", version=f"lonja {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    up.register(commands, common)
    nameserver_cli.register(commands, common)
    services_cli.register(commands, common)
    clients_cli.register(commands, common)
    shell.register(commands, common)
    config_cli.register(commands, common)
    web_cli.register(commands, common)
    return parser


def _global_options(ns_dest: str) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name; --ns given before the command is kept
    apart (in `ns_dest`) from --ns given after it, which argparse would otherwise let replace it."""
    options = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    options.add_argument("--ns", metavar="HOST:PORT", action=_Append, dest=ns_dest,
                         help="the name server (default: settings, 127.0.0.1:9090); several: repeat --ns or "
                              "separate them with commas (clients use the first that answers, `serve` registers "
                              "with each)")
    options.add_argument("--config", metavar="FILE", help="settings file (default: LONJA_CONFIG, else ./lonja.toml)")
    options.add_argument("--data-dir", metavar="DIR", help="local data folder (default: ./.lonja)")
    options.add_argument("--debug", action="store_true", help="show tracebacks")
    return options


class _Append(argparse.Action):
    """A repeatable option: each use adds its value to a list (the subcommand's own, apart from the one
    given before the subcommand, which argparse would otherwise replace)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, [*getattr(namespace, self.dest, []), values])


def settings_for(args: argparse.Namespace) -> Settings:
    """Load every settings layer, with this command's flags on top."""
    flags: dict[str, tuple[object, str]] = {}
    given = [*getattr(args, "ns_before_command", []), *getattr(args, "ns", [])]
    if given:
        flags.update(ns_flags(parse_addresses(given, "--ns"), "--ns"))
    if getattr(args, "data_dir", None):
        flags["data.dir"] = (args.data_dir, "--data-dir")
    for attribute, key in getattr(args, "flags", {}).items():
        value = getattr(args, attribute, None)
        if value is not None:
            flags[key] = (value, "--" + attribute.replace("_", "-"))
    return load_settings(getattr(args, "config", None), flags=flags)
