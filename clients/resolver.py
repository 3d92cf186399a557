"""Name resolution shared by every proxy in the process, kept fresh by following the name server's changes.

One `Resolver` per name server address, or list of them (and token), holds a connection to the first
that answers and the serving instances of
each name asked for so far. A process that keeps calling (that asks for a name again, a second after the first
lookup or after a failed call) also starts a background thread that follows the change log
(`lonja_changes`) of the names it has cached, and only of those: when an instance is added, removed or
changes status, the cached entry for its name is marked stale and asked for again, so no call goes to an
address the name server already knows is dead (while the name server is away, the stale entry is used:
services keep serving without it). A name first asked for while the watcher is already waiting is trusted
a second at a time until the watcher's next request includes it. A second
proxy for a name costs no round trip. A one-shot command (`lonja call`) asks once and starts no thread;
without the change log (a plain Pyro5 name server, or nobody asked to follow it) entries are kept for a
few seconds only.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import ClassVar

from lonja.config import current_settings, parse_addresses
from lonja.config.wire import MAX_WATCHED

from .errors import LonjaError, NameServerUnreachable
from .naming import NameServerClient

log = logging.getLogger("lonja.clients")

PLAIN_NS_TTL = 2.0
UNWATCHED_TTL = 1.0
"""Seconds a lookup is trusted before the watcher runs: a program that is still calling after that asks
again and starts the watcher, and a short one never pays for it."""
WATCH_POLL = 5.0


class Resolver:
    """Serving instances per name, for one name server."""

    _lock = threading.Lock()
    _by_address: ClassVar[dict[tuple[tuple[tuple[str, int], ...], float | None, str, bool], Resolver]] = {}

    @classmethod
    def for_address(cls, address: str, timeout: float | None, token: str, *,
                    follow_changes: bool = True, discover: bool | None = None) -> Resolver:
        """The process-wide resolver for the name server at `address` ("host:port", or several separated by
        commas: the first that answers) used with `token`; `discover` (default: the process's ns.discover)
        looks for one by broadcast when none of them answers.

        With `follow_changes` it follows the name server's change log from its next lookup on (a
        background thread); once one caller asked for that, the resolver keeps following.
        """
        addresses = tuple(parse_addresses(address, "the name server address"))
        if discover is None:
            discover = bool(current_settings()["ns.discover"])
        key = (addresses, timeout, token, discover)
        with cls._lock:
            resolver = cls._by_address.get(key)
            if resolver is None:
                resolver = cls._by_address[key] = Resolver(NameServerClient(list(addresses), timeout=timeout,
                                                                            token=token, discover=discover))
        if follow_changes:
            resolver.follow()
        return resolver

    def __init__(self, ns: NameServerClient) -> None:
        self.ns = ns
        self._cache: dict[str, tuple[list[str], float]] = {}
        self._lock = threading.Lock()
        self._follow = False
        self._watcher: threading.Thread | None = None
        self._in_step = False  # the watcher is past its first answer: no change can slip by unseen
        self._watched: frozenset[str] | None = frozenset()  # the names the watcher follows (None: all of them)
        self._generation = 0   # counts forgets: a lookup that raced one is not trusted until the next change

    def follow(self) -> None:
        """Follow the change log from the next lookup on; what was cached without it is asked for again."""
        with self._lock:
            if not self._follow:
                self._follow = True
                self._cache = {name: (uris, -1.0) for name, (uris, _) in self._cache.items()}

    def instances(self, name: str) -> list[str]:
        """The URIs serving `name`, from the cache or the name server (NameNotFound if there are none)."""
        cached = self._cache.get(name)  # one read of an entry that is only ever replaced whole: no lock
        if cached is not None and (cached[1] == 0 or cached[1] > time.monotonic()):
            return cached[0]
        with self._lock:
            generation, in_step, covered = self._generation, self._in_step, self._covers(name)
        try:
            uris = self.ns.resolve(name)
            lonja = self.ns.is_lonja()
        except NameServerUnreachable:
            if cached is not None:  # services keep serving while the name server is away
                return cached[0]
            raise
        with self._lock:
            if not (lonja and self._follow):
                valid_until = time.monotonic() + PLAIN_NS_TTL
            elif in_step and covered and generation == self._generation:
                valid_until = 0.0  # good until the watcher reports a change
            elif generation == self._generation and not (covered and self._watching()):
                valid_until = time.monotonic() + UNWATCHED_TTL  # not watched yet: trusted for a moment
            else:
                valid_until = -1.0  # a change may have raced this lookup: ask again next time
            self._cache[name] = (uris, valid_until)
        if lonja and self._follow and cached is not None:  # asked again: this program keeps calling
            self._start_watching()
        return uris

    def forget(self, name: str) -> None:
        """Mark what is cached for `name` stale (it changed, or a call found an instance dead): the next
        lookup asks the name server, and uses the stale list only if the name server is away."""
        with self._lock:
            self._generation += 1
            cached = self._cache.get(name)
            if cached is not None:
                self._cache[name] = (cached[0], -1.0)

    def _covers(self, name: str) -> bool:
        return self._watched is None or name in self._watched

    def _watching(self) -> bool:
        return self._watcher is not None and self._watcher.is_alive()

    def _start_watching(self) -> None:
        with self._lock:
            if self._watching():
                return
            self._watcher = threading.Thread(target=self._watch, name="lonja-watch", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        """Follow the change log; on any gap (reset, or the name server away) drop the whole cache."""
        follower = NameServerClient(self.ns.addresses, timeout=WATCH_POLL + 5, token=self.ns.token,
                                    connect_timeout=self.ns.connect_timeout, discover=self.ns.discover)
        since = -1
        while True:
            with self._lock:  # from here on, changes to these names after `since` reach this cache
                names = frozenset(self._cache) if len(self._cache) <= MAX_WATCHED else None
                self._watched = names if since >= 0 else frozenset()
            try:
                answer = follower.changes(since, WATCH_POLL, names=names if since >= 0 else None)
            except LonjaError as exc:
                log.debug("watching %s: %s", follower.address, exc)
                self._clear(keep=True)
                since = -1
                time.sleep(1.0)
                continue
            if answer.get("reset") and since >= 0:
                self._clear()
            if since < 0:  # from now on every change reaches this cache
                with self._lock:
                    self._in_step = True
            since = answer["seq"]
            for event in answer["events"]:
                self.forget(event["name"])

    def _clear(self, keep: bool = False) -> None:
        """Forget everything; with `keep`, only mark it stale (used while the name server is away)."""
        with self._lock:
            self._generation += 1
            if keep:  # the name server is away: changes may be missed until the watcher is back in step
                self._in_step = False
                self._cache = {name: (uris, -1.0) for name, (uris, _) in self._cache.items()}
            else:
                self._cache.clear()
