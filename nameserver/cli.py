"""The `lonja ns` subcommand: run a name server in the foreground (imported by `run_ns` only)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lonja.config import Settings

    from .server import NameServerHandle


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's subcommands to the `lonja` parser."""
    ns = commands.add_parser(
        "ns", parents=[common], help="run a name server in the foreground",
        description="Run a name server that plain Pyro5 clients can use too. Stops on Ctrl-C or SIGTERM.")
    ns.add_argument("--host", help="address to listen on (default: ns.host, 127.0.0.1; 0.0.0.0 or :: for every "
                                   "interface)")
    ns.add_argument("--port", type=int, help="port to listen on (default: ns.port, 9090; 0 = a free port)")
    ns.add_argument("--advertise", metavar="HOST[:PORT]",
                    help="address to put in the name server's own URI (default: the --host address; for 0.0.0.0 "
                         "or ::, this host's first address that is not loopback)")
    ns.add_argument("--storage", metavar="sqlite[:PATH]|memory",
                    help="where names are kept (default: sqlite in the data folder)")
    ns.set_defaults(run=run_ns, flags={"host": "ns.host", "port": "ns.port", "storage": "ns.storage",
                                      "advertise": "ns.advertise"})


def run_ns(args: argparse.Namespace, settings: Settings) -> int:
    from lonja.config import stop_on_signals
    from lonja.config.heap import freeze_startup_objects

    handle = start_from_settings(settings)
    freeze_startup_objects()
    with stop_on_signals(handle.shutdown), handle:
        print(f"name server listening on {handle.uri} ({handle.describe_storage()})", flush=True)
        handle.request_loop()
    return 0


def start_from_settings(settings: Settings) -> NameServerHandle:
    """Bind a name server as the ns.* settings say; its URI says what ns.advertise
    (or, bound to 0.0.0.0 or ::, the first address that is not loopback) advertises. Nothing is served yet."""
    from lonja.config.addresses import nat_options, pyro_nat

    from .server import NameServerPolicy, start_nameserver

    nat = nat_options(settings["ns.host"], settings["ns.advertise"], "--advertise (ns.advertise)")
    with pyro_nat(nat):
        handle = start_nameserver(host=settings["ns.host"], port=settings["ns.port"], storage=settings["ns.storage"],
                                  data_dir=settings.data_dir, broadcast=settings["ns.broadcast"],
                                  policy=NameServerPolicy.from_settings(settings))
    return handle
