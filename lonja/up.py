"""`lonja up`: a name server, every built-in service and the web console in one process, in the foreground.

All are imported when `up` runs, not when the parser is built. The console is left off (with one line
saying why) when the `web` extra is missing or its port is taken; `--no-web` leaves it off.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lonja.clients.web.server import DEFAULT_PORT as WEB_PORT
from lonja.services.builtin import BUILTINS

if TYPE_CHECKING:
    from lonja.config import Settings


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    up = commands.add_parser(
        "up", parents=[common], help="run a name server, the built-in services and the web console",
        description="Run a name server, every built-in service (" + ", ".join(sorted(BUILTINS)) + ") and the "
                    "web console together until Ctrl-C or SIGTERM. Default: 127.0.0.1:9090, sqlite in ./.lonja, "
                    f"the console on http://127.0.0.1:{WEB_PORT}/.")
    up.add_argument("--host", help="address to listen on (default: ns.host, 127.0.0.1; 0.0.0.0 or :: for every "
                                   "interface)")
    up.add_argument("--advertise", metavar="HOST",
                    help="address to put in URIs (default: the --host address; for 0.0.0.0 or ::, this host's "
                         "first address that is not loopback)")
    up.add_argument("--port", type=int, help="name server port (default: ns.port, 9090)")
    up.add_argument("--storage", metavar="sqlite[:PATH]|memory", help="where names are kept")
    up.add_argument("--web-host", default="127.0.0.1", help="web console address (default: 127.0.0.1)")
    up.add_argument("--web-port", type=int, default=WEB_PORT, help=f"web console port (default: {WEB_PORT})")
    up.add_argument("--no-web", action="store_true", help="no web console")
    up.set_defaults(run=run_up, flags={"host": "ns.host", "port": "ns.port", "storage": "ns.storage",
                                       "advertise": "ns.advertise"})


def run_up(args: argparse.Namespace, settings: Settings) -> int:
    from lonja.clients.web.cli import start_for_up
    from lonja.config import stop_on_signals
    from lonja.config.addresses import is_wildcard
    from lonja.nameserver.cli import start_from_settings
    from lonja.services.cli import run_host
    from lonja.services.host import ServiceHost, load_target

    ns = start_from_settings(settings)
    try:
        ns.start_in_thread()
        bind = settings["ns.host"]
        local = ("::1" if ":" in bind else "127.0.0.1") if is_wildcard(bind) else bind
        shown = ns.host.strip("[]")
        advertise = "" if shown == bind else f"[{shown}]" if ":" in shown else shown
        host = ServiceHost(settings, host=bind, ns=(local, ns.port), advertise=advertise)
        web, web_line = None, ""
        with stop_on_signals(host.stop):  # through the clean-up too: a second Ctrl-C must not cut it short
            try:
                if not args.no_web:
                    at_ns = {"ns.host": (ns.host, "lonja up"), "ns.port": (ns.port, "lonja up"),
                             "ns.fallbacks": ([], "lonja up")}
                    web, web_line = start_for_up(settings.with_flags(at_ns), args.web_host, args.web_port)
                for name in sorted(BUILTINS):
                    host.add(load_target(name))
                banner = f"name server listening on {ns.uri} ({ns.describe_storage()})"
                run_host(host, banner=banner + ("\n" + web_line if web_line else ""))
            finally:
                if web is not None:
                    web.stop()
                host.close()
                ns.close()
    finally:
        ns.close()
    print("stopped", flush=True)
    return 0
