"""Sessions: a host's death noticed when its connection closes, not when its lease runs out.

A service host keeps one connection open to the name server's session object (`lonja.Session`) and
calls `attach(entries)` on it every lease renewal, naming the (name, uri) instances it serves. When that
connection closes without the host detaching first (its process was killed: the kernel closes the
socket), the name server marks those instances "not serving" at once, with the host's own identity, so
watchers and clients learn it in well under a second. A host that is still alive attaches again on its
next renewal, which puts the instances it names back in service. Hosts that freeze, or networks that drop
packets silently, close nothing: the lease still covers those.

The connection's end is seen through Pyro5's `track_resource`: every resource tracked on a connection is
closed when the connection is.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import Pyro5.errors
import Pyro5.server
from Pyro5.callcontext import current_context

log = logging.getLogger("lonja.nameserver")

SESSION_OBJECT = "lonja.Session"
"""The object id hosts open their session on (`lonja.services.session.SESSION_OBJECT`, the same id)."""
MAX_ENTRIES = 10_000


class Session:
    """The instances one host's connection stands for; closed (by Pyro5) when that connection closes."""

    def __init__(self, keeper: SessionKeeper, conn: Any) -> None:
        self.keeper = keeper
        self.conn = conn
        self.entries: list[tuple[str, str]] = []
        self.detached = False

    def close(self) -> None:
        """The connection closed: unless the host detached, mark its instances not serving."""
        self.keeper.closed(self)


@Pyro5.server.expose
class SessionKeeper:
    """The name server's session object: hosts attach their instances to their connection."""

    def __init__(self, nameserver: Any) -> None:
        self.nameserver = nameserver
        self._lock = threading.Lock()
        self._marked: dict[tuple[str, str], None] = {}  # marked by a lost session, oldest first
        self._open: set[Session] = set()

    def attach(self, entries: list[list[str]]) -> int:
        """This connection now stands for these (name, uri) instances; ones a lost session marked not
        serving are serving again. Returns how many there are."""
        pairs = _check_entries(entries)
        session = self._session()
        session.entries = pairs
        session.detached = False
        with self._lock:
            revived = [pair for pair in pairs if pair in self._marked]
            for pair in revived:
                del self._marked[pair]
        for name, uri in revived:
            self._set_status(name, uri, "serving")
        return len(pairs)

    def detach(self) -> None:
        """The host is leaving on purpose: closing this connection changes nothing."""
        self._session().detached = True

    def closed(self, session: Session) -> None:
        """A session's connection closed: unless its host detached, mark its instances not serving, as the
        host would (with its identity)."""
        with self._lock:
            self._open.discard(session)
        if session.detached:
            return
        previous = getattr(current_context, "client", None)
        current_context.client = session.conn
        try:
            for name, uri in session.entries:
                if self._set_status(name, uri, "not serving"):
                    with self._lock:
                        if len(self._marked) >= MAX_ENTRIES:  # instances of hosts that never came back
                            self._marked.pop(next(iter(self._marked)))
                        self._marked[(name, uri)] = None
                    log.info("the session of %s at %s closed: marked not serving", name, uri)
        finally:
            current_context.client = previous

    def _session(self) -> Session:
        conn = current_context.client
        if conn is None:
            raise Pyro5.errors.PyroError("a session needs a connection")
        for resource in list(conn.tracked_resources):
            if isinstance(resource, Session) and resource.keeper is self:
                return resource
        session = Session(self, conn)
        conn.tracked_resources.add(session)
        with self._lock:
            self._open.add(session)  # Pyro5 tracks resources weakly: held here while the connection lives
        return session


    def _set_status(self, name: str, uri: str, status: str) -> bool:
        try:
            self.nameserver.lonja_set_status(name, uri, status)
            return True
        except (Pyro5.errors.NamingError, Pyro5.errors.SecurityError, ValueError, TypeError) as exc:
            log.debug("session: cannot mark %s at %s %s: %s", name, uri, status, exc)
            return False


def install_sessions(daemon: Any) -> SessionKeeper:
    """Serve a session object next to the name server in its daemon."""
    keeper = SessionKeeper(daemon.nameserver)
    daemon.register(keeper, SESSION_OBJECT)
    return keeper


def _check_entries(entries: Any) -> list[tuple[str, str]]:
    if not isinstance(entries, (list, tuple)) or len(entries) > MAX_ENTRIES:
        raise TypeError(f"entries must be a list of at most {MAX_ENTRIES} [name, uri] pairs")
    pairs = []
    for entry in entries:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not all(isinstance(x, str) for x in entry):
            raise TypeError("entries must be a list of [name, uri] pairs")
        pairs.append((entry[0], entry[1]))
    return pairs
