"""`lonja web`, and the web console's part in `lonja up`.

Building the parser imports no web framework: Starlette and uvicorn (the `web` extra) are imported when the
console starts.
"""

from __future__ import annotations

import argparse
import threading
from typing import TYPE_CHECKING

from .errors import WebConsoleError, WebExtraMissing
from .server import DEFAULT_PORT

if TYPE_CHECKING:
    from lonja.config import Settings

    from .server import WebConsole


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `lonja web` to the `lonja` parser."""
    web = commands.add_parser("web", parents=[common], help="serve the web console and its HTTP/JSON API",
                              description="Serve a live web page over the name server (names, instances, "
                                          "services, calls, changes) and the HTTP/JSON API under it, until "
                                          "Ctrl-C. Needs the web extra: pip install 'lonja[web]'.")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    web.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 = a free one)")
    web.set_defaults(run=run_web)


def run_web(args: argparse.Namespace, settings: Settings) -> int:
    from lonja.config import stop_on_signals

    from .server import WebConsole

    console = WebConsole(settings, args.host, args.port)
    stop = threading.Event()
    with stop_on_signals(stop.set):
        console.start()
        try:
            print(f"web console at {console.url} for the name server at {settings.ns_address}", flush=True)
            print("press Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            console.stop()
    print("stopped", flush=True)
    return 0


def start_for_up(settings: Settings, host: str, port: int) -> tuple[WebConsole | None, str]:
    """The console of `lonja up`, started, and the line to print; (None, why not) if it cannot run.

    A missing extra or a taken port leaves the console off: the name server and services run anyway.
    """
    from .server import WebConsole

    try:
        console = WebConsole(settings, host, port)
        console.start()
    except WebExtraMissing:
        return None, "web console off: the web extra is not installed (pip install 'lonja[web]')"
    except WebConsoleError as exc:
        return None, f"web console off: {exc}"
    return console, f"web console at {console.url}"
