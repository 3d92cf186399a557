"""The `lonja ns` subcommand: run a name server in the foreground (imported by `run_ns` only)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lonja.config import Settings


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's subcommands to the `lonja` parser."""
    ns = commands.add_parser(
        "ns", parents=[common], help="run a name server in the foreground",
        description="Run a name server that plain Pyro5 clients can use too. Stops on Ctrl-C or SIGTERM.")
    ns.add_argument("--host", help="address to listen on (default: ns.host, 127.0.0.1)")
    ns.add_argument("--port", type=int, help="port to listen on (default: ns.port, 9090; 0 = a free port)")
    ns.add_argument("--storage", metavar="sqlite[:PATH]|memory",
                    help="where names are kept (default: sqlite in the data folder)")
    ns.set_defaults(run=run_ns, flags={"host": "ns.host", "port": "ns.port", "storage": "ns.storage"})


def run_ns(args: argparse.Namespace, settings: Settings) -> int:
    from .server import NameServerPolicy, run_nameserver

    return run_nameserver(host=settings["ns.host"], port=settings["ns.port"], storage=settings["ns.storage"],
                          data_dir=settings.data_dir, broadcast=settings["ns.broadcast"],
                          policy=NameServerPolicy.from_settings(settings))
