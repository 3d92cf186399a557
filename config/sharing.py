"""Objects passed by reference, on both sides of a connection (issue 10 §1–§2; Pyro5#92, Pyro5#79).

Pyro5 passes an object by reference only when the program registered it on a daemon itself (its
"autoproxy"), and never frees it (Pyro5#92); a client has no daemon unless it writes one, so it cannot
pass a callback object without one (Pyro5#79). lonja closes both gaps with one mechanism:

- `share(obj)` (one object) and `@remote` (every instance of a class) mark what goes by reference. When
  such an object is serialized, the process's `SharedTable` of the daemon that answers (a service
  host's, while it sends a reply) or else of this process's callback endpoint (a client's arguments;
  started on first need, stopped at exit) registers it and sends **Pyro5's own proxy form**
  (`{"__class__": "Pyro5.client.Proxy", "state": ...}`), so plain Pyro5 peers get a Pyro5 proxy. Object
  ids start with `REFERENCE_PREFIX`; a reply that carries references has the annotation `REFERENCES`
  (its value: the lease in seconds), which tells a lonja client to turn them into lonja proxies.
- Lifetimes are leases held by *holders* (one per client process, a random id). A receiving lonja
  process `retain`s each reference it turned into a proxy and `release`s it when the proxy is closed or
  garbage-collected; it renews all its holds with one heartbeat every third of a lease. Those all travel
  in one request of the daemon object, `shared_hold(holder, retained, released, lent)`. An object is dropped when no
  holder keeps it; a holder that stops renewing (killed, cut off) loses its holds after the lease. An
  export not yet claimed by a receiver (or one lent onward by a holder) stays for one lease.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from Pyro5 import core
from Pyro5.callcontext import current_context
from Pyro5.serializers import SerializerBase

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("lonja.sharing")

REFERENCE_PREFIX = "lonja.ref."
"""Object ids of shared objects (lease-managed); other autoproxied objects live as their service decides."""
REFERENCES = "REFS"
"""A reply's annotation: its result holds references; the value is the lease in seconds (ASCII)."""
PROXY_CLASS = "Pyro5.client.Proxy"

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Shared:
    """`share(obj)`: `obj`, to be sent by reference; `loop` is the event loop running where it was shared."""

    __slots__ = ("loop", "obj")

    def __init__(self, obj: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self.obj = obj
        self.loop = loop


def share(obj: T) -> T:
    """Send `obj` by reference: the receiver gets a proxy, and calls on it run here, on `obj`.

    Return it from a service method (`return share(Cart())`), or pass it as a call's argument (a
    callback object: `shop.watch(share(listener))`). Every public method of an undecorated class is
    exposed, as `@service` does. Typed as `obj` itself, for the caller's convenience.
    """
    if isinstance(obj, Shared) or obj is None or isinstance(obj, (int, float, str, bytes, list, tuple, dict, set)):
        raise TypeError(f"share() takes an object of a class of yours, not {type(obj).__name__}")
    _exposed(type(obj))
    return cast(T, Shared(obj, _running_loop()))


def remote(cls: type[T]) -> type[T]:
    """Class decorator: every instance is sent by reference (as `share(instance)` would be)."""
    if not inspect.isclass(cls):
        raise TypeError("@remote decorates a class")
    _exposed(cls)
    SerializerBase.register_class_to_dict(cls, _export_to_dict)
    return cls


def _exposed(cls: type) -> None:
    """Expose every public method of `cls` unless it marks some with `@expose` (as `@service` does)."""
    if cls.__dict__.get("_lonja_exposed"):
        return
    own = any(getattr(getattr(value, "fget", None) or getattr(value, "__func__", None) or value,
                      "_pyroExposed", False) for value in vars(cls).values())
    if not own:
        from Pyro5.server import expose  # imported when first needed: a client that shares nothing skips it

        expose(cls)
    try:
        type.__setattr__(cls, "_lonja_exposed", True)
    except TypeError:
        pass


# -- the table of shared objects on one daemon -------------------------------------------------------

class _Entry:
    """One shared object: who holds it, and the transfers not yet claimed (exports and loans minus their
    receivers' claims; either may come first), kept until `unclaimed_until`."""

    __slots__ = ("holders", "obj", "unclaimed", "unclaimed_until")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.holders: dict[str, int] = {}
        self.unclaimed = 0
        self.unclaimed_until = 0.0


class SharedTable:
    """The objects one daemon shares, with who holds them; see the module docstring for the rules."""

    def __init__(self, daemon: Any, lease: float,
                 wrap: Callable[[Any, asyncio.AbstractEventLoop | None], Any] | None = None) -> None:
        self.daemon = daemon
        self.lease = lease
        self.lease_text = repr(float(lease)).encode()
        self._wrap = wrap
        self._entries: dict[str, _Entry] = {}
        self._ids: dict[int, str] = {}
        self._holders: dict[str, float] = {}
        self._lock = threading.Lock()
        self._swept = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def ids(self) -> frozenset[str]:
        """The object ids shared from here right now."""
        with self._lock:
            return frozenset(self._entries)

    def __contains__(self, obj: object) -> bool:
        """True while `obj` is shared from here (someone holds it, or a transfer of it is unclaimed)."""
        with self._lock:
            oid = self._ids.get(id(obj))
            entry = self._entries.get(oid) if oid is not None else None
            return entry is not None and entry.obj is obj

    def export(self, obj: Any, loop: asyncio.AbstractEventLoop | None = None) -> dict[str, Any]:
        """Register `obj` (once) and return it in Pyro5's proxy form, as it goes on the wire."""
        now = time.monotonic()
        with self._lock:
            known = self._ids.get(id(obj))
            entry = self._entries.get(known) if known is not None else None
            oid = known or ""
            if entry is None or entry.obj is not obj:
                oid = f"{REFERENCE_PREFIX}{random.getrandbits(96):024x}"
                entry = _Entry(obj)
                self._entries[oid] = entry
                self._ids[id(obj)] = oid
                self.daemon.objectsById[oid] = obj if self._wrap is None else self._wrap(obj, loop)
            entry.unclaimed += 1
            entry.unclaimed_until = now + self.lease
        return proxy_form(self.daemon, oid)

    def hold(self, holder: str, retained: dict[str, int], released: dict[str, int], lent: list[str]) -> list[str]:
        """A holder's heartbeat with its changes: holds it took (`retained`, per object id: how many
        proxies it made) and gave up (`released`), and objects it passed on (`lent`: kept a lease for
        their receiver). Returns the retained or lent ids that are no longer here."""
        now = time.monotonic()
        gone: list[str] = []
        with self._lock:
            self._holders[holder] = now + self.lease
            for oid in lent:
                entry = self._entries.get(oid)
                if entry is None:
                    gone.append(oid)
                    continue
                entry.unclaimed += 1
                entry.unclaimed_until = now + self.lease
            for oid in retained.keys() | released.keys():
                entry = self._entries.get(oid)
                took, gave = retained.get(oid, 0), released.get(oid, 0)
                if entry is None:
                    if took > gave:
                        gone.append(oid)
                    continue
                entry.unclaimed -= took
                held = entry.holders.get(holder, 0) + took - gave
                if held > 0:
                    entry.holders[holder] = held
                else:
                    entry.holders.pop(holder, None)
                if not self._alive(entry, now):
                    self._drop(oid, entry)
        self.sweep()
        return gone

    def claim(self, object_id: str) -> None:
        """A reference came home as an argument: the transfer that lent it is complete."""
        with self._lock:
            entry = self._entries.get(object_id)
            if entry is not None:
                entry.unclaimed -= 1

    def sweep(self, every: float = 1.0) -> None:
        """Drop the holds of holders whose lease ran out, and the objects nobody holds (at most once per
        `every` seconds)."""
        now = time.monotonic()
        if now - self._swept < every:
            return
        with self._lock:
            self._swept = now
            expired = {holder for holder, until in self._holders.items() if until < now}
            for holder in expired:
                del self._holders[holder]
            for oid, entry in list(self._entries.items()):
                for holder in [h for h in entry.holders if h in expired or h not in self._holders]:
                    del entry.holders[holder]
                if entry.unclaimed_until < now:
                    entry.unclaimed = 0
                if not self._alive(entry, now):
                    self._drop(oid, entry)

    def clear(self) -> None:
        with self._lock:
            for oid, entry in list(self._entries.items()):
                self._drop(oid, entry)

    @staticmethod
    def _alive(entry: _Entry, now: float) -> bool:
        return bool(entry.holders) or (entry.unclaimed > 0 and entry.unclaimed_until >= now)

    def _drop(self, oid: str, entry: _Entry) -> None:
        del self._entries[oid]
        if self._ids.get(id(entry.obj)) == oid:
            del self._ids[id(entry.obj)]
        self.daemon.objectsById.pop(oid, None)


def proxy_form(daemon: Any, object_id: str) -> dict[str, Any]:
    """Pyro5's wire form of a proxy for `object_id` on `daemon`, with its methods and attributes."""
    meta = daemon.objectsById[core.DAEMON_NAME].get_metadata(object_id)
    state = (str(daemon.uriFor(object_id)), tuple(meta["oneway"]), tuple(meta["methods"]), tuple(meta["attrs"]),
             "hello", None)
    return {"__class__": PROXY_CLASS, "state": state}


def _remote_method(method: F) -> F:
    """Pyro5's `@expose` for a method, without importing Pyro5's server into every client."""
    cast(Any, method)._pyroExposed = True
    return method


class SharingMethods:
    """What a daemon object with a `SharedTable` (as `self.daemon.shared`) adds to Pyro5's: `shared_hold`,
    the one request by which holders keep shared objects, and `shared_count`. Mixed into a
    `DaemonObject` subclass (a service host's, the callback endpoint's)."""

    daemon: Any

    @_remote_method
    def shared_hold(self, holder: str, retained: dict[str, int], released: dict[str, int],
                    lent: list[str]) -> dict[str, Any]:
        """Apply a holder's retains, releases and loans and renew its lease. The answer: the retained or
        lent ids no longer here (`gone`), and the lease in seconds (`lease`), which holders renew within."""
        if not isinstance(holder, str) or not all(isinstance(d, dict) for d in (retained, released)) \
                or not isinstance(lent, list):
            raise TypeError("shared_hold(holder: str, retained: dict[str, int], released: dict[str, int], "
                            "lent: list[str])")
        table = self.daemon.shared
        gone = table.hold(holder, {str(k): int(v) for k, v in retained.items()},
                          {str(k): int(v) for k, v in released.items()}, [str(oid) for oid in lent])
        return {"gone": gone, "lease": table.lease}

    @_remote_method
    def shared_missing(self, object_ids: list[str]) -> list[str]:
        """Those of `object_ids` this daemon does not share (any more)."""
        return [oid for oid in object_ids if oid not in self.daemon.shared.ids()]

    @_remote_method
    def shared_count(self) -> int:
        """How many objects this daemon shares right now."""
        return len(self.daemon.shared)


# -- which table exports what is serialized now --------------------------------------------------------

_replying = threading.local()


class replying:
    """While a daemon serializes a reply in this block, shared objects in it are exported by `table`.

    A class rather than a generator: it is entered on every reply, and costs less this way."""

    __slots__ = ("previous", "table")

    def __init__(self, table: SharedTable) -> None:
        self.table = table

    def __enter__(self) -> None:
        self.previous = getattr(_replying, "table", None)
        _replying.table = self.table

    def __exit__(self, *exc_info: Any) -> None:
        _replying.table = self.previous


def mark_reply() -> None:
    """Tell the receiver of the reply being serialized (if any) that it holds references."""
    table = getattr(_replying, "table", None)
    if table is not None:
        current_context.response_annotations[REFERENCES] = table.lease_text


def _export_to_dict(value: Any) -> dict[str, Any]:
    obj, loop = (value.obj, value.loop) if isinstance(value, Shared) else (value, _running_loop())
    table = getattr(_replying, "table", None)
    if table is None:
        table = callback_endpoint().shared
    else:
        current_context.response_annotations[REFERENCES] = table.lease_text
    return table.export(obj, loop)


def install_sharing() -> None:
    """Make every serializer send `share(obj)` by reference (idempotent; `@remote` classes register
    themselves)."""
    SerializerBase.register_class_to_dict(Shared, _export_to_dict)


# -- the callback endpoint: what serves a client's shared objects -------------------------------------

class CallbackEndpoint:
    """This process's daemon for objects it passes as arguments (callbacks): lonja's guarded daemon,
    bound on the interface that reaches the name server (loopback for a local one), served by a
    background thread, stopped at exit."""

    def __init__(self) -> None:
        from .addresses import local_address_towards
        from .limits import Limits
        from .settings import current_settings

        settings = current_settings()
        host = local_address_towards(settings["ns.host"], settings["ns.port"]) or "127.0.0.1"
        self.daemon = _endpoint_daemon_class()(host, 0, Limits.from_settings(settings),
                                               threads=settings["service.threads"],
                                               interface=_endpoint_object_class())
        self.shared = SharedTable(self.daemon, settings["references.lease"], wrap=_callable_here)
        self.daemon.shared = self.shared
        self._thread = threading.Thread(target=self.daemon.requestLoop, name="lonja-callbacks", daemon=True)
        self._thread.start()

    @property
    def location(self) -> str:
        return str(self.daemon.locationStr)

    def close(self) -> None:
        """Stop serving; the objects shared from here are gone for their holders."""
        self.shared.clear()
        self.daemon.shutdown()
        self._thread.join(timeout=5)


@functools.cache
def _endpoint_object_class() -> type:
    """The callback endpoint's daemon object: Pyro5's, with `SharingMethods`."""
    from Pyro5.server import DaemonObject, expose

    return expose(type("EndpointDaemonObject", (SharingMethods, DaemonObject), {}))


@functools.cache
def _endpoint_daemon_class() -> type:
    """lonja's guarded daemon, exporting shared objects in its replies and sweeping them on the request
    loop's housekeeping."""
    from .daemon import GuardedDaemon

    class EndpointDaemon(GuardedDaemon):
        shared: SharedTable

        def housekeeping(self) -> None:
            self.shared.sweep()

        def _dumps_result(self, serializer_id: int, data: Any) -> bytes:
            with replying(self.shared):
                payload: bytes = super()._dumps_result(serializer_id, data)
                return payload

    return EndpointDaemon


_endpoint: CallbackEndpoint | None = None
_endpoint_lock = threading.Lock()


def callback_endpoint() -> CallbackEndpoint:
    """This process's callback endpoint, started on first need (and stopped at exit)."""
    global _endpoint
    with _endpoint_lock:
        if _endpoint is None:
            _endpoint = CallbackEndpoint()
            atexit.register(stop_callback_endpoint)
        return _endpoint


def running_callback_endpoint() -> CallbackEndpoint | None:
    """The callback endpoint if this process started one."""
    return _endpoint


def stop_callback_endpoint() -> None:
    """Stop this process's callback endpoint, if it runs (at exit; a later need starts a new one)."""
    global _endpoint
    with _endpoint_lock:
        endpoint, _endpoint = _endpoint, None
    if endpoint is not None:
        endpoint.close()


def _callable_here(obj: Any, loop: asyncio.AbstractEventLoop | None) -> Any:
    """What the callback endpoint registers for `obj`: its methods exposed, an `async def` one run on
    `loop` (the event loop running where `obj` was shared; else a loop of its own)."""
    kind: Any = type(obj)
    return _callable_class(kind)(obj, loop)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread (none where asyncio was never imported: it costs 20 ms)."""
    running = sys.modules.get("asyncio")
    try:
        return None if running is None else running.get_running_loop()
    except RuntimeError:
        return None


class _Callable:
    __slots__ = ("_lonja_loop", "_lonja_obj")

    def __init__(self, obj: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self._lonja_obj = obj
        self._lonja_loop = loop


@functools.cache
def _callable_class(cls: Any) -> type:
    """A class with `cls`'s exposed methods, forwarding to the wrapped object (see `_callable_here`)."""
    from Pyro5.server import _get_exposed_members

    namespace: dict[str, Any] = {"__doc__": cls.__doc__, "__module__": cls.__module__, "__slots__": ()}
    members = _get_exposed_members(cls)
    for name in members["methods"]:
        original = getattr(cls, name)
        namespace[name] = _forwarder(name, original)
    return type(cls.__name__, (_Callable,), namespace)


def _forwarder(name: str, original: Any) -> Any:
    if inspect.iscoroutinefunction(original):
        import asyncio

        def forward(self: _Callable, *args: Any, **kwargs: Any) -> Any:
            coroutine = getattr(self._lonja_obj, name)(*args, **kwargs)
            loop = self._lonja_loop
            if loop is not None and loop.is_running():
                return asyncio.run_coroutine_threadsafe(coroutine, loop).result()
            return asyncio.run(coroutine)
    else:
        def forward(self: _Callable, *args: Any, **kwargs: Any) -> Any:
            return getattr(self._lonja_obj, name)(*args, **kwargs)
    forward.__name__ = name
    forward.__doc__ = original.__doc__
    for flag in ("_pyroExposed", "_pyroOneway", "_pyroCallback"):
        if getattr(original, flag, False):
            setattr(forward, flag, True)
    forward._pyroExposed = True  # type: ignore[attr-defined]
    return forward
