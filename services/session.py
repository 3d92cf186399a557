"""A service host's session with the name server: one connection that stands for the host's instances.

The host attaches the (name, uri) instances it serves to this connection on start and at every lease
renewal (see `lonja.nameserver.session`). If the host's process dies, the kernel closes the connection
and the name server marks those instances not serving at once, instead of when their lease runs out.
A host that stops on purpose detaches first. Every failure here is quiet: without a session (a plain
Pyro5 name server, an older lonja one, a network hiccup) the lease still does the job, and the next
renewal tries again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import Pyro5.errors
from Pyro5.client import Proxy

from lonja.config.wire import client_handshake

log = logging.getLogger("lonja.services")

SESSION_OBJECT = "lonja.Session"
"""The name server's session object (`lonja.nameserver.session.SESSION_OBJECT`, the same id)."""


class HostSession:
    """The session connection of one host with the name server at `host:port`."""

    def __init__(self, host: str, port: int, token: str, timeout: float | None) -> None:
        location = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.uri = f"PYRO:{SESSION_OBJECT}@{location}"
        self.token = token
        self.timeout = timeout
        self._proxy: Proxy | None = None
        self._lock = threading.Lock()

    def attach(self, entries: list[tuple[str, str]]) -> bool:
        """Tie these instances to the session (connecting first if needed); False if that failed."""
        with self._lock:
            for _ in range(2):  # a connection the name server closed (it restarted) gets one fresh try
                fresh = self._proxy is None
                try:
                    self._connected().attach([list(entry) for entry in entries])
                    return True
                except (Pyro5.errors.PyroError, OSError) as exc:
                    log.debug("no session with the name server: %s", exc)
                    self._drop()
                    if fresh:
                        break
            return False

    def close(self) -> None:
        """Detach (the instances stay as they are), then close the connection."""
        with self._lock:
            if self._proxy is not None:
                try:
                    self._proxy._pyroClaimOwnership()
                    self._proxy.detach()
                except (Pyro5.errors.PyroError, OSError):
                    pass
            self._drop()

    def _connected(self) -> Any:
        if self._proxy is None:
            proxy = Proxy(self.uri)
            proxy._pyroTimeout = self.timeout
            proxy._pyroHandshake = client_handshake(self.token, SESSION_OBJECT)
            proxy._pyroBind()
            self._proxy = proxy
        self._proxy._pyroClaimOwnership()
        return self._proxy

    def _drop(self) -> None:
        if self._proxy is not None:
            self._proxy._pyroRelease()
            self._proxy = None
