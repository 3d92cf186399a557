"""The `lonja config` and `lonja certs` subcommands: the effective settings, and development certificates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .settings import Settings, is_secret


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `lonja config show` and `lonja certs init` to the `lonja` parser.

    Both set `needs_pyro=False`: they work without applying the settings to Pyro5 (so `certs init` can make
    the files that LONJA_TLS_* already name), for a front door that checks that attribute."""
    config = commands.add_parser("config", parents=[common], help="show the effective settings")
    config.set_defaults(run=_usage(config), needs_pyro=False)
    actions = config.add_subparsers(title="actions", metavar="ACTION")
    show = actions.add_parser("show", parents=[common], help="print every setting and the layer it came from")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=run_show)

    certs = commands.add_parser("certs", parents=[common], help="make development TLS certificates")
    certs.set_defaults(run=_usage(certs), needs_pyro=False)
    certs_actions = certs.add_subparsers(title="actions", metavar="ACTION")
    init = certs_actions.add_parser("init", parents=[common], help="create a CA, a server and a client certificate",
                                    description="Create a development CA plus server and client certificates "
                                                "(PEM) in DIR, and print the settings that use them.")
    init.add_argument("directory", metavar="DIR")
    init.add_argument("--force", action="store_true", help="replace existing files")
    init.add_argument("--san", action="append", default=[], metavar="HOST",
                      help="another host name or IP address the certificates are valid for (repeatable; "
                           "127.0.0.1, ::1 and localhost are always in)")
    init.set_defaults(run=run_certs_init)


def _usage(parser: argparse.ArgumentParser):
    """A `run` for a command given without its action: show that command's help, exit 2."""
    def run(args: argparse.Namespace, settings: Settings) -> int:
        parser.print_help()
        return 2
    return run


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    values = {key: {"value": _shown(key, v.value), "source": v.source} for key, v in settings.items()}
    if args.json:
        print(json.dumps(values, indent=2))
        return 0
    width = max(len(key) for key in values)
    for key, value in values.items():
        print(f"{key:<{width}} = {json.dumps(value['value']):<24} # {value['source']}")
    return 0


def _shown(key: str, value: object) -> object:
    if is_secret(key) and value:
        return ["(hidden)"] * len(value) if isinstance(value, list) else "(hidden)"
    return value


def run_certs_init(args: argparse.Namespace, settings: Settings) -> int:
    from .certs import init_certs

    paths = init_certs(Path(args.directory).expanduser().resolve(), force=args.force, names=tuple(args.san))
    for path in paths.values():
        print(f"wrote {path}")
    print("\nservers (lonja up / ns / serve):")
    print(f"  LONJA_TLS_ENABLED=true LONJA_TLS_CA={paths['ca.pem']} LONJA_TLS_REQUIRE_CLIENT_CERT=true \\")
    print(f"  LONJA_TLS_CERT={paths['server.pem']} LONJA_TLS_KEY={paths['server.key']}")
    print("clients (lonja ls / call / ..., connect()):")
    print(f"  LONJA_TLS_ENABLED=true LONJA_TLS_CA={paths['ca.pem']} \\")
    print(f"  LONJA_TLS_CERT={paths['client.pem']} LONJA_TLS_KEY={paths['client.key']}")
    print("(or the same keys under [tls] in lonja.toml)")
    return 0
