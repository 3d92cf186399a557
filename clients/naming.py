"""Talking to the name server: straight to host:port, never a broadcast wait.

Pyro5's `locate_ns()` tries a UDP broadcast for about two seconds before it gives up; lonja always knows
the address (flag, LONJA_NS, config or the default 127.0.0.1:9090) and goes there directly.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import Pyro5.errors
from Pyro5.client import Proxy
from Pyro5.core import NAMESERVER_NAME

from config import current_settings, parse_address

from .errors import NameNotFound, NameServerUnreachable

DEFAULT_CONNECT_TIMEOUT = 2.0


def resolve_ns_address(ns: str | None = None) -> tuple[str, int]:
    """The name server's (host, port): from `ns` ("host:port") if given, else from the settings."""
    if ns:
        return parse_address(ns, "ns argument")
    settings = current_settings()
    return settings["ns.host"], settings["ns.port"]


class NameServerClient:
    """A thread-safe handle on one name server. Every method raises NameServerUnreachable if it is down."""

    def __init__(self, ns: str | tuple[str, int] | None = None, *,
                 timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        self.host, self.port = ns if isinstance(ns, tuple) else resolve_ns_address(ns)
        self.timeout = timeout
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.uri = f"PYRO:{NAMESERVER_NAME}@{host}:{self.port}"
        self._proxy: Proxy | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def ping(self) -> float:
        """Round-trip time of a call to the name server, in seconds."""
        start = time.perf_counter()
        self._call("ping")
        return time.perf_counter() - start

    def lookup(self, name: str) -> tuple[str, frozenset[str]]:
        """The URI and metadata registered under `name`; NameNotFound if there is none."""
        uri, metadata = self._call("lookup", name, return_metadata=True)
        return str(uri), frozenset(metadata)

    def list(self, prefix: str | None = None) -> dict[str, tuple[str, frozenset[str]]]:
        """Every registration whose name starts with `prefix`: name -> (uri, metadata)."""
        entries = self._call("list", prefix=prefix or None, return_metadata=True)
        return {name: (str(uri), frozenset(meta)) for name, (uri, meta) in sorted(entries.items())}

    def register(self, name: str, uri: str, metadata: frozenset[str] | set[str] = frozenset(),
                 safe: bool = False) -> None:
        self._call("register", name, str(uri), safe=safe, metadata=set(metadata))

    def remove(self, name: str) -> int:
        return self._call("remove", name)

    def count(self) -> int:
        return self._call("count")

    def close(self) -> None:
        with self._lock:
            if self._proxy is not None:
                self._proxy._pyroClaimOwnership()
                self._proxy._pyroRelease()
                self._proxy = None

    def __enter__(self) -> "NameServerClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            for attempt in (1, 2):
                proxy = self._connected()
                try:
                    return getattr(proxy, method)(*args, **kwargs)
                except Pyro5.errors.NamingError as exc:
                    raise NameNotFound(_naming_message(exc, args)) from None
                except Pyro5.errors.ConnectionClosedError:
                    self._drop()  # a stale pooled connection (the name server restarted): try once more
                    if attempt == 2:
                        raise self._unreachable() from None
                except Pyro5.errors.CommunicationError:
                    self._drop()
                    raise self._unreachable() from None

    def _connected(self) -> Proxy:
        if self._proxy is None:
            proxy = Proxy(self.uri)
            proxy._pyroTimeout = self.timeout
            try:
                proxy._pyroBind()
            except Pyro5.errors.CommunicationError:
                raise self._unreachable() from None
            self._proxy = proxy
        self._proxy._pyroClaimOwnership()
        return self._proxy

    def _drop(self) -> None:
        if self._proxy is not None:
            self._proxy._pyroRelease()
            self._proxy = None

    def _unreachable(self) -> NameServerUnreachable:
        return NameServerUnreachable(
            f"no name server answers at {self.address}: start one with `lonja up` or `lonja ns`, "
            f"or point --ns / LONJA_NS at the right HOST:PORT")


def _naming_message(exc: Exception, args: tuple) -> str:
    text = str(exc)
    if "unknown name" in text and args:
        return f"no service is registered as {args[0]!r}: see `lonja ls` for the names there are"
    return text
