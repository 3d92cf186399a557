"""What the name server knows beyond Pyro5's name -> URI table: instances, leases, health, and changes.

A name may have several instances (processes serving the same class). Each instance has a status
(serving, not serving, unreachable, unknown), a last-seen time and, when a lonja host registered it, a
lease that the host renews. Pyro5's storage keeps one URI per name for plain Pyro5 clients: always a
serving instance when there is one (the "primary").

Every change is appended to a numbered log that watchers read with `since(seq, timeout, prefix, names)`.
The registry itself holds no lock of its own: the name server calls it under its lock.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SERVING = "serving"
NOT_SERVING = "not serving"      # leased: its host is stopping; plain: its daemon says the object is gone
UNREACHABLE = "unreachable"      # plain: nothing accepts connections at its address (kept for a grace period)
UNKNOWN = "unknown"              # not checked yet

ADDED = "added"
REMOVED = "removed"
STATUS = "status"


@dataclass(slots=True)
class Instance:
    """One process serving a name."""

    name: str
    uri: str
    owner: str
    class_name: str = ""
    lease_expires: float | None = None   # monotonic time; None: no lease (checked by probing instead)
    lease_ttl: float = 0.0               # seconds the lease was granted for
    status: str = UNKNOWN
    last_seen: float = 0.0               # wall-clock time of the last renewal or successful probe
    failing_since: float | None = None   # monotonic time the current failing status began
    next_probe: float = 0.0
    probing: threading.Event | None = None  # set when the probe in flight ends; None: no probe in flight
    revalidate: bool = False             # loaded from storage at start: a missing object is dropped at once

    def describe(self, show_owner: bool = True) -> dict[str, Any]:
        """What `lonja_list` shows of this instance; the owner only to callers allowed to see it."""
        return {"uri": self.uri, "status": self.status, "last_seen": self.last_seen,
                "lease": self.lease_expires is not None, "class": self.class_name,
                "owner": self.owner if show_owner else ""}


COALESCE = 0.05
"""Seconds a change waits before it is sent to a watcher, with those that follow it meanwhile: a burst of
registrations reaches each watcher in one answer per COALESCE (or per MAX_ANSWER changes), not one
answer (and one request) per change."""
MAX_ANSWER = 1000
_NONE: dict[str, Instance] = {}


class _Waiter:
    """A watcher waiting for changes: woken only by a change it asked for (or by close)."""

    __slots__ = ("cond", "names", "prefix")

    def __init__(self, prefix: str, names: frozenset[str] | None, lock: threading.Lock) -> None:
        self.prefix, self.names, self.cond = prefix, names, threading.Condition(lock)

    def wants(self, name: str) -> bool:
        return name.startswith(self.prefix) and (self.names is None or name in self.names)


@dataclass
class ChangeLog:
    """Numbered changes, the newest `keep` of them; a watcher waits for the ones it asked for.

    A watcher asks by prefix and, optionally, by a set of names (a client's resolver follows only the names
    it resolved): a change wakes only the watchers that want it, so a burst of registrations costs nothing
    for watchers of other names.
    """

    keep: int = 10_000
    seq: int = 0
    events: collections.deque = field(default_factory=collections.deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    waiters: list[_Waiter] = field(default_factory=list)
    gathering: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.gathering = threading.Condition(self.lock)  # watchers letting a burst arrive: only close() wakes them

    def close(self) -> None:
        """Answer every waiting watcher now and never wait again (the name server is stopping)."""
        with self.lock:
            self.closed = True
            for waiter in self.waiters:
                waiter.cond.notify()
            self.gathering.notify_all()

    def append(self, kind: str, name: str, uri: str, status: str) -> None:
        with self.lock:
            self.seq += 1
            self.events.append({"seq": self.seq, "kind": kind, "name": name, "uri": uri, "status": status,
                                "time": time.time()})
            while len(self.events) > self.keep:
                self.events.popleft()
            for waiter in self.waiters:
                if waiter.wants(name):
                    waiter.cond.notify()

    def since(self, seq: int, timeout: float, prefix: str = "",
              names: frozenset[str] | None = None) -> dict[str, Any]:
        """Changes after `seq` to names with `prefix` (and in `names`, if given), waiting up to `timeout` s
        for one; `reset` if `seq` is too old to answer."""
        deadline = time.monotonic() + max(0.0, min(timeout, 60.0))
        waiter = _Waiter(prefix, names, self.lock)
        with self.lock:
            if seq < 0:  # a new watcher: where the log stands now, nothing older
                return {"seq": self.seq, "reset": False, "events": []}
            while True:
                if self.events and seq < self.events[0]["seq"] - 1:
                    return {"seq": self.seq, "reset": True, "events": []}
                newer = itertools.islice(self.events, max(0, seq - self.events[0]["seq"] + 1), None) \
                    if self.events else ()
                found = [e for e in newer if waiter.wants(e["name"])]  # the log is in seq order
                remaining = deadline - time.monotonic()
                young = found[0]["time"] + COALESCE - time.time() if found else 0.0
                if young > 0 and remaining > 0 and len(found) < MAX_ANSWER and not self.closed:
                    self.gathering.wait(min(young, remaining))  # let the burst this change began arrive too
                    continue
                if found or remaining <= 0 or seq > self.seq or self.closed:
                    return {"seq": self.seq, "reset": seq > self.seq, "events": found}
                seq = self.seq  # nothing wanted yet: wait for later changes only
                self.waiters.append(waiter)
                try:
                    waiter.cond.wait(remaining)
                finally:
                    self.waiters.remove(waiter)


class Registry:
    """Instances per name, in memory; the name server keeps its storage's primary URIs in step."""

    def __init__(self) -> None:
        self.instances: dict[str, dict[str, Instance]] = {}
        self.log = ChangeLog()

    def get(self, name: str) -> list[Instance]:
        return list(self.instances.get(name, {}).values())

    def each(self, name: str) -> Iterable[Instance]:
        """The instances of `name` without a copy: for reading only (the registry must not change meanwhile)."""
        return self.instances.get(name, _NONE).values()

    def find(self, name: str, uri: str) -> Instance | None:
        return self.instances.get(name, {}).get(uri)

    def add(self, instance: Instance) -> None:
        self.instances.setdefault(instance.name, {})[instance.uri] = instance
        self.log.append(ADDED, instance.name, instance.uri, instance.status)

    def drop(self, name: str, uri: str) -> Instance | None:
        by_uri = self.instances.get(name, {})
        instance = by_uri.pop(uri, None)
        if not by_uri:
            self.instances.pop(name, None)
        if instance is not None:
            self.log.append(REMOVED, name, uri, instance.status)
        return instance

    def drop_name(self, name: str) -> None:
        if name in self.instances:
            for instance in self.get(name):
                self.drop(name, instance.uri)

    def set_status(self, instance: Instance, status: str) -> None:
        if status == SERVING:
            instance.last_seen = time.time()
        if instance.status != status:
            instance.status = status
            self.log.append(STATUS, instance.name, instance.uri, status)

    def serving(self, name: str) -> list[Instance]:
        return [i for i in self.get(name) if i.status == SERVING]

    def primary(self, name: str) -> Instance | None:
        """The instance plain Pyro5 clients should reach: a serving one if any, else one not checked yet,
        else the newest (an unreachable one stays reachable by lookup, for clients that reconnect)."""
        by_uri = self.instances.get(name)
        if not by_uri:
            return None
        unchecked = None
        for instance in by_uri.values():
            if instance.status == SERVING:
                return instance
            if unchecked is None and instance.status == UNKNOWN:
                unchecked = instance
        return unchecked or next(reversed(by_uri.values()))

    def all(self) -> list[Instance]:
        return [i for by_uri in self.instances.values() for i in by_uri.values()]
