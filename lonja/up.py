"""`lonja up`: a name server and every built-in service in one process, in the foreground.

Both are imported when `up` runs, not when the parser is built.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lonja.services.builtin import BUILTINS

if TYPE_CHECKING:
    from lonja.config import Settings


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    up = commands.add_parser(
        "up", parents=[common], help="run a name server and the built-in services",
        description="Run a name server and every built-in service (" + ", ".join(sorted(BUILTINS)) + ") "
                    "together until Ctrl-C or SIGTERM. Default: 127.0.0.1:9090, sqlite in ./.lonja.")
    up.add_argument("--host", help="address to listen on (default: ns.host, 127.0.0.1)")
    up.add_argument("--port", type=int, help="name server port (default: ns.port, 9090)")
    up.add_argument("--storage", metavar="sqlite[:PATH]|memory", help="where names are kept")
    up.set_defaults(run=run_up, flags={"host": "ns.host", "port": "ns.port", "storage": "ns.storage"})


def run_up(args: argparse.Namespace, settings: Settings) -> int:
    from lonja.config import stop_on_signals
    from lonja.nameserver.server import NameServerPolicy, start_nameserver
    from lonja.services.cli import run_host
    from lonja.services.host import ServiceHost, load_target

    ns = start_nameserver(host=settings["ns.host"], port=settings["ns.port"], storage=settings["ns.storage"],
                          data_dir=settings.data_dir, broadcast=settings["ns.broadcast"],
                          policy=NameServerPolicy.from_settings(settings))
    try:
        ns.start_in_thread()
        host = ServiceHost(settings, host=settings["ns.host"], ns=(ns.host, ns.port))
        with stop_on_signals(host.stop):  # through the clean-up too: a second Ctrl-C must not cut it short
            try:
                for name in sorted(BUILTINS):
                    host.add(load_target(name))
                run_host(host, banner=f"name server listening on {ns.uri} ({ns.describe_storage()})")
            finally:
                host.close()
                ns.close()
    finally:
        ns.close()
    print("stopped", flush=True)
    return 0
