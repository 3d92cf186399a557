"""The lonja name server: Pyro5's NameServer on a storage we pick, and a handle to run and stop it."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import signal
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import Pyro5.core
import Pyro5.errors
import Pyro5.nameserver
import Pyro5.server

from .errors import NameServerError
from .storage import Storage, make_storage

NAMESERVER_METADATA = {"class:Pyro5.nameserver.NameServer"}
"""The tag Pyro5's own name server registers itself with; tools may yplookup it."""

SHUTDOWN_WAIT = 10.0
"""Seconds shutdown() waits for a request loop in another thread to return."""


@Pyro5.server.expose
class LonjaNameServer(Pyro5.nameserver.NameServer):
    """Pyro5's name server, unchanged so far: the place for leases, watches and access control.

    Exposed like its parent (Pyro5 uses a bare `@expose`), so plain Pyro5 clients and `pyro5-nsc`
    talk to it as to Pyro5's own. Methods added here must be exposed one by one or by this decorator.
    """

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)


class NameServerDaemon(Pyro5.server.Daemon):
    """A Pyro5 daemon serving one LonjaNameServer over a storage it owns: closing it closes the storage.

    Mirrors `Pyro5.nameserver.NameServerDaemon`, which only takes a storage by name. Pyro5's
    AutoCleaner is not started, whatever PYRO_NS_AUTOCLEAN says.
    """

    def __init__(self, storage: Storage, host: str = "127.0.0.1", port: int = 9090) -> None:
        self.nameserver = LonjaNameServer(storage)
        try:
            super().__init__(host=host, port=port)
        except OSError as exc:
            storage.close()
            if exc.errno == errno.EADDRINUSE:
                raise NameServerError(f"port {port} on {host} is already in use: is another name server "
                                      f"running? Use --port to pick another") from None
            raise NameServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            self.register(self.nameserver, Pyro5.core.NAMESERVER_NAME)
            self.nameserver.register(Pyro5.core.NAMESERVER_NAME, self.uriFor(self.nameserver),
                                     metadata=NAMESERVER_METADATA)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop listening and close the storage; safe to call twice."""
        super().close()
        self.nameserver.storage.close()

    def handleRequest(self, conn: Any) -> None:
        """Warn on a protocol error (often a client using another serializer), as Pyro5's daemon does."""
        try:
            return super().handleRequest(conn)
        except Pyro5.errors.ProtocolError as exc:
            warnings.warn("Pyro protocol error occurred: " + str(exc))
            raise


class NameServerHandle:
    """A bound name server: where it listens, and how to run and stop its request loop."""

    def __init__(self, daemon: NameServerDaemon,
                 broadcast_server: Optional[Pyro5.nameserver.BroadcastServer] = None) -> None:
        self.daemon = daemon
        self.uri: Pyro5.core.URI = daemon.uriFor(daemon.nameserver)
        self.host: str = self.uri.host
        self.port: int = self.uri.port
        self.storage_spec: str = daemon.nameserver.storage.spec
        self.broadcast_server = broadcast_server
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._loop_thread: Optional[threading.Thread] = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<NameServerHandle {self.uri} storage={self.storage_spec}>"

    def _claim_loop(self, thread: threading.Thread) -> None:
        """Record which thread will run the request loop; there is only one loop per handle."""
        with self._state_lock:
            if self._closed:
                raise NameServerError("this name server is closed")
            if self._loop_thread is not None:
                raise NameServerError("this name server's request loop is already running")
            self._loop_thread = thread
            self._loop_done.clear()

    def _run_loop(self) -> None:
        try:
            self.daemon.requestLoop(loopCondition=lambda: not self._stop.is_set())
        finally:
            self._loop_thread = None
            self._loop_done.set()

    def request_loop(self) -> None:
        """Serve requests in this thread until shutdown() or close() is called."""
        self._claim_loop(threading.current_thread())
        self._run_loop()

    def start_in_thread(self) -> "NameServerHandle":
        """Serve requests in a background daemon thread (for tests and `lonja up`); returns self."""
        thread = threading.Thread(target=self._run_loop, name=f"lonja-nameserver-{self.port}", daemon=True)
        self._claim_loop(thread)
        thread.start()
        return self

    def shutdown(self) -> None:
        """Make the request loop return; from another thread, also wait until it has.

        Safe to call from any thread, from a signal handler, before the loop starts, or twice.
        """
        self._stop.set()
        transport = self.daemon.transportServer
        if transport is not None:
            transport.wakeup()
        loop_thread = self._loop_thread
        if loop_thread is not None and loop_thread is not threading.current_thread():
            self._loop_done.wait(SHUTDOWN_WAIT)

    def close(self) -> None:
        """Stop the loop, stop listening (and broadcasting), and close the storage; safe to call twice."""
        self.shutdown()
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        if self.broadcast_server is not None:
            self.broadcast_server.close()
        self.daemon.close()

    def __enter__(self) -> "NameServerHandle":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def start_nameserver(host: str = "127.0.0.1", port: int = 9090, storage: str = "sqlite",
                     data_dir: Path = Path(".lonja"), broadcast: bool = False) -> NameServerHandle:
    """Open the storage and bind the name server (port 0 picks a free one); nothing is served yet.

    Run it with `request_loop()` or `start_in_thread()`. With `broadcast`, a host that is not a
    loopback address also answers Pyro5's UDP discovery, as `Pyro5.nameserver.start_ns` does.
    """
    daemon = NameServerDaemon(make_storage(storage, data_dir), host, port)
    broadcast_server = None
    bound_ip = daemon.sock.getsockname()[0]
    if broadcast and daemon.sock.family == socket.AF_INET and not _is_loopback(bound_ip):
        try:
            broadcast_server = Pyro5.nameserver.BroadcastServer(daemon.uriFor(daemon.nameserver, nat=False))
        except OSError as exc:
            daemon.close()
            raise NameServerError(f"cannot start the name server's broadcast responder on UDP port "
                                  f"{Pyro5.config.NS_BCPORT}: {exc.strerror or exc}") from None
        broadcast_server.runInThread()
    return NameServerHandle(daemon, broadcast_server)


@contextlib.contextmanager
def _stop_signals_call(stop: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call `stop` (only the main thread may set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda _signum, _frame: stop()) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_nameserver(host: str = "127.0.0.1", port: int = 9090, storage: str = "sqlite",
                   data_dir: Path = Path(".lonja"), broadcast: bool = False) -> int:
    """Run a name server in the foreground until SIGINT or SIGTERM, then close it cleanly; returns 0.

    Prints one line saying where it listens and which storage it uses.
    """
    handle = start_nameserver(host, port, storage, data_dir, broadcast)
    with _stop_signals_call(handle.shutdown), handle:
        print(f"name server listening on {handle.uri} (storage: {handle.storage_spec})", flush=True)
        handle.request_loop()
    return 0
