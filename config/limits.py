"""What a lonja server accepts from its peers, and how it reports the ones it turns away.

Pyro5's servers trust their peers: a handshake may take forever, a connection may sit idle forever, the
connect message is unzipped without bound and decoded with whatever serializer the peer names (marshal
included, which Python documents as unsafe for untrusted data). `Limits` holds the bounds lonja's
transport and daemons apply instead, all from the `[limits]` settings; `PeerLog` keeps the log of
refused input to one line per event, rate-limited, so a flood of garbage cannot flood the log too.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, NamedTuple

from .settings import Settings

MARSHAL_ID = 2
"""Pyro5's serializer id of marshal."""


class Limits(NamedTuple):
    """Bounds on connections and messages; see `limits` in `defaults.DEFAULTS` for what each means.

    A NamedTuple, not a dataclass: the `dataclasses` module and its generated methods cost every lonja
    process a few milliseconds at start.
    """

    max_connections: int = 256
    max_connections_per_peer: int = 0
    max_pending_per_peer: int = 64
    max_connect_size: int = 64 * 1024
    max_message_size: int = 100 * 1024 * 1024
    handshake_timeout: float = 5.0
    receive_timeout: float = 10.0
    idle_timeout: float = 600.0
    busy_wait: float = 0.0
    accept_marshal: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, max_message_size: int | None = None) -> Limits:
        """The limits of `settings`; a name server passes its own (smaller) `max_message_size`."""
        return cls(max_connections=settings["limits.max_connections"],
                   max_connections_per_peer=settings["limits.max_connections_per_peer"],
                   max_pending_per_peer=settings["limits.max_pending_per_peer"],
                   max_connect_size=settings["limits.max_connect_size"],
                   max_message_size=max_message_size or settings["limits.max_message_size"],
                   handshake_timeout=settings["limits.handshake_timeout"],
                   receive_timeout=settings["limits.receive_timeout"],
                   idle_timeout=settings["limits.idle_timeout"],
                   busy_wait=settings["limits.busy_wait"],
                   accept_marshal=settings["limits.accept_marshal"])

    def refuses_serializer(self, serializer_id: int) -> str | None:
        """Why a message in this serializer is refused, or None if it is accepted."""
        if serializer_id == MARSHAL_ID and not self.accept_marshal:
            return ("this server does not accept the marshal serializer from the network (unsafe for "
                    "untrusted data): use msgpack, serpent or json, or set limits.accept_marshal = true")
        return None


class PeerLog:
    """Warnings about misbehaving peers: one line each, at most `burst` per `window` seconds."""

    def __init__(self, logger: logging.Logger, burst: int = 20, window: float = 10.0) -> None:
        self._log = logger
        self._burst = burst
        self._window = window
        self._lock = threading.Lock()
        self._started = 0.0
        self._count = 0
        self._suppressed = 0

    def warning(self, peer: str, message: str) -> None:
        """Log "PEER: MESSAGE" unless the burst for this window is used up (then count it)."""
        now = time.monotonic()
        with self._lock:
            if now - self._started > self._window:
                if self._suppressed:
                    self._log.warning("%d more such lines suppressed in the last %.0f s", self._suppressed,
                                      self._window)
                self._started, self._count, self._suppressed = now, 0, 0
            if self._count >= self._burst:
                self._suppressed += 1
                return
            self._count += 1
        self._log.warning("%s: %s", peer, message)


LOCAL_PEER = "unix socket"
"""The peer address given for a connection through a Unix socket (a host's local socket)."""


def peer_of(conn: Any) -> str:
    """"HOST:PORT" of the peer of a Pyro5 connection, for log lines ("unix socket" for a local one)."""
    try:
        address = conn.sock.getpeername()
    except (OSError, AttributeError):
        return "a client"
    if not isinstance(address, tuple):
        return LOCAL_PEER
    return f"{address[0]}:{address[1]}"
