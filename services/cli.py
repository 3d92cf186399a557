"""The `lonja serve` subcommand: host services in the foreground until SIGINT/SIGTERM.

The host machinery is imported when `serve` runs, not when the parser is built.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .builtin import BUILTINS
from .errors import ServiceLoadError

if TYPE_CHECKING:
    from lonja.config import Settings

    from .host import ServiceHost


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's subcommands to the `lonja` parser."""
    serve = commands.add_parser(
        "serve", parents=[common], help="host services and register them in the name server",
        description="Host one or more services in one process. TARGET is package.module:Class or a "
                    f"built-in service ({', '.join(sorted(BUILTINS))}); modules are imported from the "
                    "current folder (or --app-dir) first, as `python -m` does. Names are removed again on "
                    "Ctrl-C or SIGTERM.")
    serve.add_argument("targets", nargs="+", metavar="TARGET")
    serve.add_argument("--name", help="register under this name (one TARGET only)")
    serve.add_argument("--host", help="address to listen on (default: service.host, 127.0.0.1; 0.0.0.0 or :: for "
                                      "every interface)")
    serve.add_argument("--port", type=int, help="port to listen on (default: a free port)")
    serve.add_argument("--advertise", metavar="HOST[:PORT]",
                       help="address to put in URIs, for NAT and containers (default: the --host address; for "
                            "0.0.0.0 or ::, this host's address that reaches the name server)")
    serve.add_argument("--app-dir", metavar="DIR", default=".",
                       help="import TARGET modules from DIR first (default: the current folder)")
    serve.set_defaults(run=run_serve, flags={"host": "service.host", "port": "service.port",
                                             "advertise": "service.advertise"})


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from lonja.config import stop_on_signals

    from .host import ServiceHost, load_target

    if args.name and len(args.targets) > 1:
        raise ServiceLoadError("--name works with one TARGET only: run one `lonja serve` per name")
    if not Path(args.app_dir).is_dir():
        raise ServiceLoadError(f"--app-dir {args.app_dir}: no such folder")
    classes = [load_target(target, app_dir=args.app_dir) for target in args.targets]
    host = ServiceHost(settings)
    with stop_on_signals(host.stop):  # through the clean-up too: a second Ctrl-C must not cut it short
        try:
            for cls in classes:
                host.add(cls, name=args.name)
            run_host(host)
        finally:
            host.close()
    return 0


def run_host(host: ServiceHost, banner: str = "") -> None:
    """Start `host`, print where each service listens, and serve until `host.stop()` (a signal) is called."""
    from lonja.config.heap import freeze_startup_objects
    from lonja.config.wire import shown_address

    host.start()
    freeze_startup_objects()
    if banner:
        print(banner, flush=True)
    for hosted in host.hosted:
        print(f"serving {hosted.name} at {hosted.uri}", flush=True)
        for address, uri in host.registered_as(hosted).items():
            print(f"the name server at {address} registered it as {uri} (ns.correct_uris)", flush=True)
    if host.daemon.local_socket is not None:
        print(f"lonja clients on this machine call it through {shown_address(host.daemon.local_socket)}",
              flush=True)
    print("press Ctrl-C to stop", flush=True)
    while not host.wait(0.5):
        pass
