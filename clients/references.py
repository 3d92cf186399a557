"""Objects by reference on the client side (issue 10 §1; Pyro5#92): proxies for objects that stay where
they live, and the holds that keep those objects alive exactly as long as a proxy for them does.

A reply with the `REFERENCES` annotation (see `lonja.config.sharing`) holds Pyro5 proxies; `adopt`
turns each into a lonja `ServiceProxy` backed by a `ReferenceClient`, with every call mode of a service
proxy (plain, oneway, future, aio, batch, streams), thread-safe and closeable. A reference's calls go
over the pooled connections of one `ServiceClient` per host (`PYRO:Pyro.Daemon@HOST:PORT`) with the
object's id, so a thousand references cost no thousand connections.

`ReferenceKeeper` (one per process) holds them: it retains each adopted reference, releases it when its
proxy is closed or garbage-collected, and renews the process's holds with a heartbeat every third of a
lease, in one `shared_hold` request per host and round. At exit it releases what is left.

A proxy sent as an argument goes as Pyro5's proxy form: its own host turns it back into the object, any
other lonja service into a proxy of its own (see `lonja.services.sharing`).
"""

from __future__ import annotations

import atexit
import collections
import logging
import random
import threading
import time
import weakref
from typing import Any

from Pyro5.client import Proxy
from Pyro5.core import DAEMON_NAME, URI
from Pyro5.serializers import SerializerBase

from lonja.config import Settings, current_settings
from lonja.config.sharing import PROXY_CLASS, REFERENCE_PREFIX, install_sharing

from .errors import LonjaError, OutcomeUnknown, ReferenceGone, RemoteError, ServiceUnreachable, UsageError
from .proxy import CallOptions, Metadata, ServiceClient, ServiceProxy, _client_of

log = logging.getLogger("lonja.references")

_hosts: dict[str, ServiceClient] = {}
_hosts_lock = threading.Lock()


def host_client(location: str, settings: Settings | None = None) -> ServiceClient:
    """The client for the daemon at `location` ("HOST:PORT"), shared by every reference to objects there."""
    with _hosts_lock:
        client = _hosts.get(location)
        if client is None:
            client = ServiceClient(f"PYRO:{DAEMON_NAME}@{location}", settings=settings, follow_changes=False)
            _hosts[location] = client
        return client


class ReferenceClient(ServiceClient):
    """What stands behind a reference's proxy: calls go to its object over its host's shared connections."""

    def __init__(self, uri: URI, methods: frozenset[str], attrs: frozenset[str], oneway: frozenset[str],
                 options: CallOptions | None = None, settings: Settings | None = None, held: bool = False) -> None:
        super().__init__(str(uri), settings=settings, follow_changes=False)
        if options is not None:
            self.options = options
        self.object_id = uri.object
        self.location = uri.location
        self._host = host_client(uri.location, settings)
        self._ref_meta: Metadata | None = None
        if methods or attrs:
            self._ref_meta = self._metadata_of(methods, attrs, oneway)
        self._released = False
        self._release = weakref.finalize(self, shared_keeper().release, self.location, self.object_id) \
            if held else None
        if self._release is not None:
            self._release.atexit = False  # the keeper releases everything at exit in one request per host

    @staticmethod
    def _metadata_of(methods: frozenset[str], attrs: frozenset[str], oneway: frozenset[str]) -> Metadata:
        return Metadata(methods=methods, attrs=attrs, oneway=oneway, idempotent=frozenset(),
                        generators=frozenset(), batchable=True, host_describes=True)

    @property
    def known_metadata(self) -> Metadata | None:
        return self._ref_meta

    def metadata(self) -> Metadata:
        """The object's methods and attributes: those its reference came with, else asked of its host."""
        if self._ref_meta is None:
            meta = self._host.call("get_metadata", (self.object_id,), {}, self.options)
            self._ref_meta = self._metadata_of(frozenset(meta["methods"]), frozenset(meta["attrs"]),
                                               frozenset(meta["oneway"]))
        return self._ref_meta

    def is_quick(self, method: str) -> bool:
        return False

    def call(self, method: str, args: Any, kwargs: dict, options: CallOptions | None = None,
             flags: int = 0, object_id: str | None = None) -> Any:
        """Call a method of the referenced object, on a connection of its host's."""
        if self._released:
            raise UsageError(f"this reference to {self.target} is closed (by close(proxy) or the end of its "
                             f"`with` block): ask its service for a new one")
        try:
            return self._host.call(method, args, kwargs, options or self.options, flags,
                                   object_id=object_id or self.object_id)
        except ServiceUnreachable as exc:  # the host's own message names only the host
            if not isinstance(exc, OutcomeUnknown) and self.object_id.startswith(REFERENCE_PREFIX) and self._gone():
                raise ReferenceGone(f"{self.target} no longer exists on its host (released, or not renewed for "
                                    f"longer than a lease): ask its service for a new one") from None
            raise type(exc)(f"calling {method}() of {self.target}, an object by reference: {exc}") from None

    def _gone(self) -> bool:
        """True if the host answers, and no longer shares the object."""
        try:
            missing = self._host.call("shared_missing", ([self.object_id],), {}, CallOptions(timeout=5.0, retries=0))
        except LonjaError:
            return False
        return bool(missing)

    def describe(self, signatures: bool = True) -> dict[str, Any]:
        """The object's description from its host (names and flags only, where the host cannot describe)."""
        if signatures:
            try:
                description: dict[str, Any] = self._host.call("describe", (self.object_id,), {}, self.options)
                return description
            except RemoteError:
                pass
        return super().describe(False)

    def ping(self) -> float:
        return self._host.ping()

    def close(self) -> None:
        """Release the object (its host may drop it) and refuse later calls."""
        self._released = True
        super().close()
        if self._release is not None:
            self._release()


def reference_proxy(proxy: Proxy, via: ServiceClient | None = None) -> ServiceProxy:
    """A lonja proxy for what a Pyro5 proxy refers to: an object by reference (held while the proxy
    lives), another object of a daemon, or a service by name."""
    uri = proxy._pyroUri
    if uri.protocol != "PYRO":
        return ServiceProxy(str(uri))
    held = uri.object.startswith(REFERENCE_PREFIX)
    client = ReferenceClient(uri, frozenset(proxy._pyroMethods), frozenset(proxy._pyroAttrs),
                             frozenset(proxy._pyroOneway), options=via.options if via is not None else None,
                             held=held)
    if held:
        shared_keeper().retain(uri.location, uri.object)
    return ServiceProxy(str(uri), client=client)


def adopt(value: Any, via: ServiceClient | None = None, lease: float | None = None) -> Any:
    """`value` with every Pyro5 proxy in it (in lists, tuples, sets and dict values) made a lonja proxy."""
    if lease is not None:
        shared_keeper().heard_lease(lease)
    kind = type(value)
    if kind is Proxy:
        return reference_proxy(value, via)
    if kind is list:
        return [adopt(item, via) for item in value]
    if kind is tuple:
        return tuple(adopt(item, via) for item in value)
    if kind is dict:
        return {key: adopt(item, via) for key, item in value.items()}
    if kind is set:
        return {adopt(item, via) for item in value}
    return value


def shared_objects(proxy: ServiceProxy) -> int:
    """How many objects the host of `proxy`'s service shares by reference right now (all its holders')."""
    return int(_client_of(proxy).call("shared_count", (), {}, object_id=DAEMON_NAME))  # on a pooled connection


def proxy_to_dict(proxy: ServiceProxy) -> dict[str, Any]:
    """A lonja proxy as it goes on the wire: Pyro5's proxy form (a reference is lent to its receiver)."""
    client = _client_of(proxy)
    if isinstance(client, ReferenceClient):
        meta = client.known_metadata
        if client.object_id.startswith(REFERENCE_PREFIX):
            shared_keeper().lend(client.location, client.object_id)
        uri = client.target
    else:
        meta = client.known_metadata
        uri = client.uri
    from lonja.config.sharing import mark_reply

    mark_reply()
    names = ((), (), ()) if meta is None else (tuple(meta.oneway), tuple(meta.methods), tuple(meta.attrs))
    return {"__class__": PROXY_CLASS, "state": (uri, *names, "hello", None)}


def install_references() -> None:
    """Send lonja proxies (and `share()`d objects) by reference with every serializer (idempotent)."""
    install_sharing()
    SerializerBase.register_class_to_dict(ServiceProxy, proxy_to_dict)


# -- the holds ---------------------------------------------------------------------------------------

class ReferenceKeeper:
    """This process's holds on shared objects: retains, releases, loans and heartbeats, sent in batches."""

    def __init__(self) -> None:
        self.holder = f"{random.getrandbits(96):024x}"
        self._held: dict[str, collections.Counter[str]] = {}
        self._retained: dict[str, collections.Counter[str]] = {}
        self._released: dict[str, collections.Counter[str]] = {}
        self._lent: dict[str, list[str]] = {}
        self._failing: dict[str, float] = {}
        self._lease = float(current_settings()["references.lease"])
        self._cond = threading.Condition()
        self._sending = threading.Lock()  # one batch at a time: a host sees each holder's changes in order
        self._thread: threading.Thread | None = None
        self._beat = 0.0
        atexit.register(self.release_all)

    def held(self) -> int:
        """How many references this process holds."""
        with self._cond:
            return sum(sum(counter.values()) for counter in self._held.values())

    def heard_lease(self, lease: float) -> None:
        """A host said its lease: heartbeats come often enough for the shortest one heard."""
        if 0 < lease < self._lease:
            with self._cond:
                self._lease = min(self._lease, lease)

    def retain(self, location: str, object_id: str) -> None:
        self._change(location, object_id, 1, self._retained)

    def release(self, location: str, object_id: str) -> None:
        self._change(location, object_id, -1, self._released)

    def lend(self, location: str, object_id: str) -> None:
        with self._cond:
            self._lent.setdefault(location, []).append(object_id)
            self._wake()

    def _change(self, location: str, object_id: str, delta: int,
                changes: dict[str, collections.Counter[str]]) -> None:
        with self._cond:
            held = self._held.setdefault(location, collections.Counter())
            held[object_id] += delta
            if held[object_id] <= 0:
                del held[object_id]
                if not held:
                    del self._held[location]
            changes.setdefault(location, collections.Counter())[object_id] += 1
            self._wake()

    def _wake(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lonja-references", daemon=True)
            self._thread.start()
        self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending() - set(self._failing):
                    if not self._held and not self._pending():
                        self._thread = None
                        return
                    self._cond.wait(max(0.0, self._beat + self._lease / 3 - time.monotonic()))
            with self._sending:  # taken before the condition, as release_all does
                with self._cond:
                    batch = self._take(heartbeat=time.monotonic() >= self._beat + self._lease / 3)
                for location, changes in batch.items():
                    self._send(location, *changes)
            time.sleep(0.005)  # let a burst of releases gather into the next batch

    def _pending(self) -> set[str]:
        return set(self._retained) | set(self._released) | set(self._lent)

    def _take(self, heartbeat: bool) -> dict[str, tuple[dict[str, int], dict[str, int], list[str]]]:
        """The changes to send now (a host that failed lately waits for the next heartbeat)."""
        locations = self._pending()
        if heartbeat:
            self._beat = time.monotonic()
            locations |= set(self._held)
        else:
            locations -= set(self._failing)
        batch = {location: (dict(self._retained.pop(location, {})), dict(self._released.pop(location, {})),
                            self._lent.pop(location, [])) for location in locations}
        return batch

    def _send(self, location: str, retained: dict[str, int], released: dict[str, int], lent: list[str],
              timeout: float | None = None) -> None:
        client = host_client(location)
        options = CallOptions(timeout=5.0, retries=1) if timeout is None else \
            CallOptions(timeout=timeout, retries=0, connect_timeout=timeout)
        try:
            answer = client.call("shared_hold", (self.holder, retained, released, lent), {}, options)
            self._failing.pop(location, None)
            self.heard_lease(float(answer["lease"]))
            if answer["gone"]:
                self._forget(location, answer["gone"])
        except LonjaError as exc:
            now = time.monotonic()
            since = self._failing.setdefault(location, now)
            with self._cond:
                if now - since > self._lease:  # the host is gone for longer than a lease: so are its objects
                    log.warning("dropping references to %s: %s", location, exc)
                    self._held.pop(location, None)
                    self._failing.pop(location, None)
                    with _hosts_lock:
                        _hosts.pop(location, None)
                    return
                self._retained.setdefault(location, collections.Counter()).update(retained)
                self._released.setdefault(location, collections.Counter()).update(released)
                self._lent.setdefault(location, []).extend(lent)

    def _forget(self, location: str, gone: list[str]) -> None:
        """Stop holding objects their host no longer has (dropped while this process could not renew)."""
        with self._cond:
            held = self._held.get(location)
            for object_id in gone:
                if held is not None:
                    held.pop(object_id, None)
            if held is not None and not held:
                del self._held[location]

    def release_all(self, timeout: float = 1.0) -> None:
        """Release every hold at once (at exit), each host given `timeout` seconds."""
        if not self._sending.acquire(timeout=5 * timeout):
            return
        with self._cond:
            self._failing.clear()
            batch = self._take(heartbeat=False)
            for location, held in self._held.items():
                retained, released, lent = batch.get(location, ({}, {}, []))
                batch[location] = (retained, dict(collections.Counter(released) + held), lent)
            self._held.clear()
        try:
            for location, changes in batch.items():
                self._send(location, *changes, timeout=timeout)
        finally:
            self._sending.release()


_keeper: ReferenceKeeper | None = None
_keeper_lock = threading.Lock()


def shared_keeper() -> ReferenceKeeper:
    """The process-wide keeper of references, created on first use."""
    global _keeper
    with _keeper_lock:
        if _keeper is None:
            _keeper = ReferenceKeeper()
        return _keeper


install_references()
