"""The lonja name server: Pyro5's NameServer on a storage we pick, and a handle to run and stop it."""

from __future__ import annotations

import errno
import logging
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import Pyro5.core
import Pyro5.errors
import Pyro5.nameserver
import Pyro5.server

from lonja.config import Settings, stop_on_signals
from lonja.config.addresses import is_loopback
from lonja.config.auth import TokenTable
from lonja.config.daemon import GuardedDaemon
from lonja.config.limits import Limits
from lonja.config.wire import name_to_resolve

from .errors import NameServerError
from .names import LonjaNameServer
from .session import install_sessions
from .storage import Storage, make_storage

log = logging.getLogger("lonja.nameserver")

NAMESERVER_METADATA = {"class:Pyro5.nameserver.NameServer"}
"""The tag Pyro5's own name server registers itself with; tools may yplookup it."""

SHUTDOWN_WAIT = 10.0
"""Seconds shutdown() waits for a request loop in another thread to return."""


@dataclass(frozen=True)
class NameServerPolicy:
    """How the name server judges liveness and who may write: leases, sweeps, probes, tokens."""

    lease_ttl: float = 10.0
    sweep_interval: float = 1.0
    probe_interval: float = 5.0
    probe_grace: float = 15.0
    unreachable_grace: float = 3600.0
    tokens: TokenTable = field(default_factory=lambda: TokenTable(False, {}, True))
    limits: Limits = field(default_factory=lambda: Limits(max_message_size=1024 * 1024))
    correct_uris: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> NameServerPolicy:
        return cls(settings["ns.lease_ttl"], settings["ns.sweep_interval"], settings["ns.probe_interval"],
                   settings["ns.probe_grace"], settings["ns.unreachable_grace"], TokenTable.from_settings(settings),
                   Limits.from_settings(settings, max_message_size=settings["ns.max_message_size"]),
                   settings["ns.correct_uris"])


class NameServerDaemon(GuardedDaemon):
    """A guarded daemon serving one LonjaNameServer over a storage it owns: closing it closes the storage.

    Mirrors `Pyro5.nameserver.NameServerDaemon`, which only takes a storage by name. Pyro5's
    AutoCleaner is not started, whatever PYRO_NS_AUTOCLEAN says. Every connection is identified by its
    token (anonymous without one), which decides what it may change.
    """

    def __init__(self, storage: Storage, host: str = "127.0.0.1", port: int = 9090,
                 policy: NameServerPolicy | None = None) -> None:
        self.policy = policy or NameServerPolicy()
        self.nameserver = LonjaNameServer(storage, lease_ttl=self.policy.lease_ttl,
                                          probe_interval=self.policy.probe_interval,
                                          probe_grace=self.policy.probe_grace,
                                          unreachable_grace=self.policy.unreachable_grace,
                                          correct_uris=self.policy.correct_uris)
        self._sweeping = threading.Event()
        try:
            # Each lonja client process keeps one long-poll call open for watching changes: as many
            # threads as connections may be busy at once.
            super().__init__(host, port, self.policy.limits, servertype="adaptive",
                             threads=self.policy.limits.max_connections, tokens=self.policy.tokens)
        except OSError as exc:
            storage.close()
            if exc.errno == errno.EADDRINUSE:
                raise NameServerError(f"port {port} on {host} is already in use: is another name server "
                                      f"running? Use --port to pick another") from None
            raise NameServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            self.register(self.nameserver, Pyro5.core.NAMESERVER_NAME)
            self.nameserver._register_self(self.uriFor(self.nameserver), NAMESERVER_METADATA)
            install_sessions(self)
        except BaseException:
            self.close()
            raise
        threading.Thread(target=self._sweep_loop, name="lonja-ns-sweeper", daemon=True).start()

    def handshake_reply(self, conn: Any, data: Any) -> Any:
        """A lonja client that names what it will look up gets the instances with the answer."""
        reply = super().handshake_reply(conn, data)
        name = name_to_resolve(data)
        if name is not None and isinstance(reply, dict):
            try:
                reply["instances"] = self.nameserver.lonja_instances(name)
            except (Pyro5.errors.NamingError, TypeError, ValueError):
                pass  # the client asks again in a request, which raises the error it reports
        return reply

    def _sweep_loop(self) -> None:
        while not self._sweeping.wait(self.policy.sweep_interval):
            try:
                self.nameserver.sweep()
            except Exception:  # the sweeper must outlive any one bad entry
                log.exception("name server sweep failed")

    def stop_background(self) -> None:
        """Stop sweeping and answer every waiting watcher at once: the first step of shutting down.

        A sweep during shutdown would expire leases that hosts can no longer renew, and watchers would
        see their names removed; a long-poll left waiting would hold the request loop for seconds.
        """
        self._sweeping.set()
        self.nameserver.stop_probes()
        self.nameserver.registry.log.close()

    def close(self) -> None:
        """Stop listening and close the storage; safe to call twice."""
        self.stop_background()
        super().close()
        self.nameserver.storage.close()


class NameServerHandle:
    """A bound name server: where it listens, and how to run and stop its request loop."""

    def __init__(self, daemon: NameServerDaemon,
                 broadcast_server: Pyro5.nameserver.BroadcastServer | None = None) -> None:
        self.daemon = daemon
        self.uri: Pyro5.core.URI = daemon.uriFor(daemon.nameserver)
        self.host: str = self.uri.host
        self.port: int = self.uri.port
        self.storage_spec: str = daemon.nameserver.storage.spec
        self.loaded: int = daemon.nameserver.loaded
        self.broadcast_server = broadcast_server
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._loop_thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<NameServerHandle {self.uri} storage={self.storage_spec}>"

    def describe_storage(self) -> str:
        """Where names are kept and how many were there at start, for the start-up line."""
        names = "1 name" if self.loaded == 1 else f"{self.loaded} names"
        return f"storage: {self.storage_spec}, {names} loaded"

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

    def start_in_thread(self) -> NameServerHandle:
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
        self.daemon.stop_background()
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

    def __enter__(self) -> NameServerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_nameserver(host: str = "127.0.0.1", port: int = 9090, storage: str = "sqlite",
                     data_dir: Path = Path(".lonja"), broadcast: bool = False,
                     policy: NameServerPolicy | None = None) -> NameServerHandle:
    """Open the storage and bind the name server (port 0 picks a free one); nothing is served yet.

    Run it with `request_loop()` or `start_in_thread()`. With `broadcast`, a host that is not a
    loopback address also answers Pyro5's UDP discovery, as `Pyro5.nameserver.start_ns` does.
    """
    daemon = NameServerDaemon(make_storage(storage, data_dir), host, port, policy)
    broadcast_server = None
    bound_ip = daemon.sock.getsockname()[0]
    if broadcast and daemon.sock.family == socket.AF_INET and not is_loopback(bound_ip):
        try:
            broadcast_server = Pyro5.nameserver.BroadcastServer(daemon.uriFor(daemon.nameserver, nat=False))
        except OSError as exc:
            daemon.close()
            raise NameServerError(f"cannot start the name server's broadcast responder on UDP port "
                                  f"{Pyro5.config.NS_BCPORT}: {exc.strerror or exc}") from None
        broadcast_server.runInThread()
    return NameServerHandle(daemon, broadcast_server)


def run_nameserver(host: str = "127.0.0.1", port: int = 9090, storage: str = "sqlite",
                   data_dir: Path = Path(".lonja"), broadcast: bool = False,
                   policy: NameServerPolicy | None = None) -> int:
    """Run a name server in the foreground until SIGINT or SIGTERM, then close it cleanly; returns 0.

    Prints one line saying where it listens and which storage it uses.
    """
    handle = start_nameserver(host, port, storage, data_dir, broadcast, policy)
    with stop_on_signals(handle.shutdown), handle:
        print(f"name server listening on {handle.uri} ({handle.describe_storage()})", flush=True)
        handle.request_loop()
    return 0
