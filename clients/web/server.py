"""Running the web console: a socket bound here (so a taken port is one clear error), uvicorn serving the
app on it in a thread of its own, and a clean stop. `lonja web` and `lonja up` both use `WebConsole`."""

from __future__ import annotations

import socket
import threading
import time

from lonja.config import Settings
from lonja.config.addresses import is_loopback

from .errors import WebConsoleError, WebExtraMissing

DEFAULT_PORT = 9095
START_TIMEOUT = 30.0


def require_extra() -> None:
    """WebExtraMissing unless Starlette and uvicorn can be imported."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise WebExtraMissing(f"the web console needs the web extra ({exc}): pip install 'lonja[web]'") from None


class WebConsole:
    """The console for the name server of `settings`, listening on host:port (0 = a free port)."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        require_extra()
        import uvicorn

        from .app import create_app

        self.socket = _bind(host, port)
        self.host = host
        self.port = self.socket.getsockname()[1]
        app, self._feeds = create_app(settings, loopback_only=is_loopback(host))
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=2, server_header=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Serve in a background thread; returns once the console answers."""
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.socket]},
                                        name="lonja-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise WebConsoleError(f"the web console did not start on {self.url}")
            time.sleep(0.01)

    def stop(self) -> None:
        """End the open change streams, stop serving and wait for the thread."""
        self._feeds.close()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.socket.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise WebConsoleError(f"the web console cannot listen on {host}:{port} ({exc.strerror or exc}): "
                              f"choose another port with --port (or --web-port for `lonja up`)") from None
    sock.set_inheritable(True)
    return sock

