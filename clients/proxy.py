"""The proxy `connect()` returns: call remote methods like local ones, from any thread, without waiting.

    with connect("echo") as echo:
        echo.echo(42)                      # a plain call
        echo.slow.oneway(1)                # fire and forget
        f = echo.slow.future(0.5)          # concurrent.futures.Future
        await echo.slow.aio(0.5)           # asyncio
        echo.slow.options(timeout=2)(1)    # per-call options
        describe(echo), ping(echo)         # lonja's own operations are functions, not proxy methods

Every public name on a proxy belongs to the service, so a service may well have a method called `ping`
or `close`. lonja's own operations on a proxy are the functions at the end of this module: `describe`,
`ping`, `uri`, `instances`, `batch` and `close`.

The work is done by the `ServiceClient` behind each proxy: each call borrows a Pyro5 connection from a
small pool per instance, so one proxy serves many threads (plain Pyro5 pins a proxy to the thread that
made it). A name resolves to every serving instance (see `resolver`); a call goes to the least busy
instance that has not gone silent (see `health`) and moves away from one that fails, and a service
restarted on a new port is found again through the name server. Calls have a deadline
(`client.timeout`, 30 s by default), so none waits forever unless asked to.

A lonja host on the same machine offers an abstract Unix socket in its handshake answer
(`service.local_socket`): once a client's TCP connection to it has carried LOCAL_AFTER calls, its
connections go through that socket, a quicker round trip (unless `client.local_socket` is off). The
socket must be served by a process of this user's, and the host must answer there with the same offer as
over TCP; otherwise the client stays on TCP.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
import select
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast, overload

import Pyro5.errors
from Pyro5 import protocol
from Pyro5.callcontext import current_context
from Pyro5.client import Proxy
from Pyro5.core import DAEMON_NAME, URI

from lonja.config import Settings, current_settings, ensure_applied, import_pyro
from lonja.config.auth import client_token
from lonja.config.connection import BufferedConnection
from lonja.config.sharing import REFERENCES
from lonja.config.wire import (
    TRACEBACK,
    Refusal,
    client_handshake,
    handshake_dropped,
    is_stream,
    local_address,
    object_gone,
    refusal_of,
    shown_address,
    slow_methods,
    too_large,
)

from .batching import Batch
from .dispatch import Dispatcher
from .errors import (
    AccessDenied,
    CallTimeout,
    LonjaError,
    MessageTooLarge,
    NameServerUnreachable,
    OutcomeUnknown,
    RemoteError,
    SerializationError,
    ServiceUnreachable,
    UsageError,
    remote_error_from,
)
from .executor import shared_executor
from .failures import tls_error, tls_message
from .health import shared_health
from .introspection import Introspection, RemoteDoc, check_interface
from .resolver import Resolver
from .stream import RemoteStream

if TYPE_CHECKING:
    from concurrent.futures import Future

import_pyro()  # lonja's serializer variants

log = logging.getLogger("lonja.clients")

_KEEP: Any = object()  # an option left out of `.options(...)`: None there means "no limit"
IDLE_CHECK = 0.01
"""Seconds a pooled connection may sit unused and still be taken without asking the system whether its peer
closed it: one that answered that recently belongs to a host that was alive then, and a loop of calls pays
no system call for the check."""
LOCAL_AFTER = 16
"""Calls a TCP connection carries before the client moves to the host's local socket: a new connection and
its handshake cost about what the socket saves on that many calls, so a command that makes a call or two
connects once."""


class CallOptions(NamedTuple):
    """How one call is made: seconds it may take in all, retries included (None = no limit), retries
    of failures before the request was sent, and seconds to reach an instance."""

    timeout: float | None = None
    retries: int = 3
    connect_timeout: float = 2.0


class Metadata(NamedTuple):
    """What a service tells a client when it connects: its names (Pyro5's `get_metadata`, which the
    daemon sends with its handshake answer), and how each method may be called (lonja's call hints)."""

    methods: frozenset[str]
    attrs: frozenset[str]
    oneway: frozenset[str]
    idempotent: frozenset[str]
    generators: frozenset[str]
    batchable: bool  # a lonja server, which takes batch requests
    host_describes: bool  # a lonja service host (it sent call hints): its daemon answers `describe`


class _NotSent(Exception):
    """Internal: the request never left this process, so it is safe to try again."""


class _Connection(Proxy):
    """One Pyro5 connection that introduces itself as a lonja client, keeps the host's answer, and reads
    and times out through a `BufferedConnection` (a call is one send and one receive)."""

    def _pyroValidateHandshake(self, response: Any) -> None:
        object.__setattr__(self, "_lonja_hello", response if isinstance(response, dict) else {})
        proxy: Any = self  # Pyro5's Proxy declares no type for its connection
        proxy._pyroConnection = BufferedConnection.adopt(proxy._pyroConnection)


class ServiceClient:
    """What stands behind a ServiceProxy: finds the instances, pools connections, makes the calls.

    Kept apart from the proxy so that the proxy's attribute namespace is entirely the service's; this is
    the interface `Batch`, `Dispatcher` and `RemoteStream` use.
    """

    def __init__(self, target: str, *, ns: str | None = None, timeout: float | None = None,
                 retries: int | None = None, serializer: str | None = None, settings: Settings | None = None,
                 follow_changes: bool = True) -> None:
        settings = settings or current_settings()
        ensure_applied(settings)
        self.target = target
        self._by_name = not target.startswith(("PYRO:", "PYRONAME:", "PYROMETA:"))
        if target.startswith("PYRONAME:"):
            name, _, location = target[len("PYRONAME:"):].partition("@")
            self.target, self._by_name, ns = name, True, ns or location or None
        self._ns_address = ns or settings.ns_address
        self._serializer = serializer or settings["client.serializer"]
        # lonja's default serializer gives way to serpent for a host that drops a msgpack handshake (a plain
        # Pyro5 server installed without msgpack); one the user chose never does
        self._fallback = "serpent" if not serializer and settings.source("client.serializer") == "default" \
            and self._serializer == "msgpack" else None
        self._serializers: dict[str, str] = {}  # hosts (URI) that took only the fallback
        self._local: dict[str, str | None] = {}  # per URI: its host's local socket, if it may be tried
        self._local_failed: set[str] = set()  # local sockets that could not be used: TCP for those
        self._takes_local = settings["client.local_socket"]
        self._busy_wait = settings["client.busy_wait"]
        self._token = client_token(settings)
        self._quick: dict[str, bool] = {}  # per method: did its host say it is quick (see wire.SLOW)?
        self.options = CallOptions(
            timeout=no_limit_as_none(settings["client.timeout"] if timeout is None else timeout),
            retries=settings["client.retries"] if retries is None else retries,
            connect_timeout=settings["client.connect_timeout"] or 2.0)
        self._pool_size = settings["client.pool_size"]
        self.workers = settings["client.workers"]
        self._resolver = Resolver.for_address(self._ns_address, self.options.connect_timeout, self._token,
                                              follow_changes=follow_changes,
                                              discover=settings["ns.discover"]) if self._by_name else None
        self._health = shared_health()
        self._idle: dict[str, list[Proxy]] = {}
        self._bad: dict[str, float] = {}
        self._lock = threading.Lock()
        self._uri: str | None = None if self._by_name else target
        self._meta: Metadata | None = None
        self._dispatch: Dispatcher | None = None
        self._closed = False

    # -- what proxies, batches, streams and the dispatcher use ------------------------------------------

    @property
    def last_uri(self) -> str | None:
        """The instance called last, without resolving anything (None before the first call)."""
        return self._uri

    @property
    def uri(self) -> str:
        """The PYRO: URI of the instance called last (picking one if there was no call yet)."""
        if self._uri is None:
            self._uri = self._pick()
        return self._uri

    @property
    def known_metadata(self) -> Metadata | None:
        """The service's metadata if a connection brought it already; never contacts anything."""
        return self._meta

    def metadata(self) -> Metadata:
        """The service's metadata, connecting to an instance on first use."""
        if self._meta is None:
            self._retrying(lambda deadline: self.give_back(self._connect_any(deadline)), None, self.options)
        assert self._meta is not None
        return self._meta

    def is_idempotent(self, method: str) -> bool:
        return self._meta is not None and method in self._meta.idempotent

    def is_quick(self, method: str) -> bool:
        """True once the service's host has answered a call of `method` without marking it slow."""
        return self._quick.get(method, False)

    def instances(self) -> list[str]:
        """The URIs of every serving instance behind the name (or the one URI connected to)."""
        return list(self._resolver.instances(self.target) if self._resolver else [self.target])

    def call(self, method: str, args: Sequence[Any], kwargs: dict, options: CallOptions | None = None,
             flags: int = 0, object_id: str | None = None) -> Any:
        """Make one call (to `object_id` on the instance's host, if given: an object by reference); retry
        failures that happened before the request was sent."""
        options = options or self.options
        return self._retrying(self._call_once, method, options, method, args, kwargs, options, flags, object_id)

    def dispatcher(self) -> Dispatcher:
        """The queue and workers behind this client's `future()` and `aio()` calls."""
        with self._lock:
            if self._dispatch is None:
                self._dispatch = Dispatcher(self, workers=self._pool_size)
            return self._dispatch

    def give_back(self, connection: Proxy) -> None:
        """Return a connection whose call ended cleanly to its instance's pool (or close it)."""
        with self._lock:
            pool = None if self._closed else self._idle.setdefault(connection._lonja_uri, [])
            if pool is not None and len(pool) < self._pool_size and connection._pyroConnection is not None \
                    and not self._moves_to_local(connection):
                object.__setattr__(connection, "_lonja_idle_since", time.monotonic())
                pool.append(connection)
                return
        release(connection)

    def _moves_to_local(self, connection: Proxy) -> bool:
        """True if `connection` is a TCP one, to a host with a usable local socket, that has carried
        LOCAL_AFTER calls: it is closed, and the next call connects through the socket."""
        if connection._pyroUri.sockname is not None or self._local.get(connection._lonja_uri) is None:
            return False
        calls = connection._lonja_calls + 1
        object.__setattr__(connection, "_lonja_calls", calls)
        return calls >= LOCAL_AFTER

    def describe(self, signatures: bool = True) -> dict[str, Any]:
        """Methods, attributes and flags of the service; with `signatures`, a lonja host's signatures
        and docs too (one request, on the connection calls use). Without them, or from a plain Pyro5
        host, the description is what connecting brought: names and flags."""
        if not signatures or not self.metadata().host_describes:
            return _description_of(self.metadata())
        return self._retrying(self._describe_once, None, self.options)

    def ping(self) -> float:
        """Round-trip time of an empty request to the service's host, in seconds."""
        start = time.perf_counter()
        connection = self._retrying(self._connect_any, None, self.options)
        connection._pyroTimeout = self.options.connect_timeout
        try:
            connection._pyroInvoke("ping", (), {}, objectId=DAEMON_NAME)
        except Pyro5.errors.CommunicationError as exc:
            release(connection)
            raise ServiceUnreachable(self._unreachable_message(exc)) from None
        self.give_back(connection)
        return time.perf_counter() - start

    def close(self) -> None:
        """Close every pooled connection; later calls raise UsageError."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for pool in idle.values():
            for connection in pool:
                release(connection)

    # -- calls --------------------------------------------------------------------------------------

    def _retrying(self, attempt_once: Callable[..., Any], method: str | None, options: CallOptions,
                  *args: Any) -> Any:
        """Run `attempt_once(deadline, *args)`, again after a backoff if it failed before sending (or sent an
        idempotent call), until the retries or the call's time run out."""
        self._check_open()
        deadline = None if options.timeout is None else time.monotonic() + options.timeout
        attempt = 0
        while True:
            try:
                return attempt_once(deadline, *args)
            except _NotSent as not_sent:
                cause = not_sent.__cause__
                if attempt >= options.retries or _expired(deadline) or \
                        isinstance(cause, (NameServerUnreachable, AccessDenied, UsageError)):
                    if isinstance(cause, LonjaError):
                        raise cause from None
                    raise ServiceUnreachable(self._unreachable_message(cause)) from None
            except OutcomeUnknown:
                if attempt >= options.retries or _expired(deadline) or method is None \
                        or not self.is_idempotent(method):
                    raise
            attempt += 1
            if not self._alternatives():
                time.sleep(_backoff(attempt, _seconds_left(deadline)))

    def _call_once(self, deadline: float | None, method: str, args: Sequence[Any], kwargs: dict,
                   options: CallOptions, flags: int, object_id: str | None = None) -> Any:
        try:
            uri = self._pick()
        except (LonjaError, Pyro5.errors.CommunicationError) as exc:
            raise _NotSent() from exc
        self._uri = uri
        call = self._health.started(uri)
        try:
            try:
                connection = self._acquire(uri, options, deadline)
            except (LonjaError, Pyro5.errors.CommunicationError) as exc:
                raise _NotSent() from exc
            result = self._invoke(connection, uri, method, args, kwargs, options, flags, deadline, object_id)
        except BaseException:
            self._health.ended(uri, call)
            raise
        self._health.ended(uri, call, answered=True)
        return result

    def _invoke(self, connection: Proxy, uri: str, method: str, args: Sequence[Any], kwargs: dict,
                options: CallOptions, flags: int, deadline: float | None, object_id: str | None = None) -> Any:
        """Send one request on `connection` (to the service, or to `object_id` on its host) and turn
        whatever comes back into a result or a lonja error."""
        left = _seconds_left(deadline)
        timeout = None if left is None else max(left, 0.001)
        if not _close_enough(connection._pyroTimeout, timeout):  # a system call: only when it changes
            connection._pyroTimeout = timeout
        try:
            result = connection._pyroInvoke(method, args, kwargs, flags=flags, objectId=object_id)
        except Pyro5.errors.SerializeError as exc:
            self.give_back(connection)
            if getattr(exc, TRACEBACK, None):  # the service could not serialize its answer
                self._health.answered(uri)
                raise remote_error_from(exc) from None
            raise SerializationError(f"cannot send the arguments of {method}() with the "
                                     f"{self._serializers.get(uri, self._serializer)} "
                                     f"serializer: {exc} (see README: what each serializer keeps)") from None
        except Pyro5.errors.TimeoutError:
            release(connection)
            self._health.timed_out(uri)
            self._mark_bad(uri, 0.0)
            raise CallTimeout(f"{self.target}.{method} did not answer within {options.timeout} s; "
                              f"it may still be running (raise the timeout with --timeout)") from None
        except Pyro5.errors.CommunicationError as exc:
            if too_large(exc):
                # the service's answer (the request was read to its end), or Pyro5's own check
                self.give_back(connection)
                raise MessageTooLarge(str(exc)) from None
            release(connection)  # it was bound before sending: the request may have gone out
            self._mark_bad(uri)
            raise OutcomeUnknown(f"the connection to {self.target} failed during {method}(): the call may or "
                                 f"may not have run ({exc})") from None
        except Pyro5.errors.PyroError as exc:
            if object_gone(exc):
                release(connection)
                self._mark_bad(uri)
                raise _NotSent() from ServiceUnreachable(
                    f"{self.target} is no longer hosted at {uri}: the service stopped")
            self._health.answered(uri)
            self.give_back(connection)
            raise remote_error_from(exc) from None
        except LonjaError:
            self.give_back(connection)
            raise
        except Exception as exc:
            self._health.answered(uri)
            self.give_back(connection)
            raise remote_error_from(exc) from None
        annotations = current_context.response_annotations
        if annotations or flags or not self._quick.get(method):  # else: a quick method, and still quick
            self._note_speed(method, args, flags)
        if REFERENCES in annotations:  # the result holds objects by reference
            from .references import adopt
            result = adopt(result, self, float(annotations[REFERENCES]))
        if is_stream(result):
            connection._pyroTimeout = options.timeout  # each item may take as long as a call
            return RemoteStream(self, connection, result)
        self.give_back(connection)
        return result

    def _note_speed(self, method: str, args: Sequence[Any], flags: int) -> None:
        """Remember which methods the reply just received says are slow (see `wire.SLOW`)."""
        slow = slow_methods(current_context.response_annotations, method)
        if flags & protocol.FLAGS_BATCH:
            for name in {call[0] for call in args}:
                self._quick[name] = slow is None or name not in slow
        else:
            self._quick[method] = slow is None

    # -- instances and connections ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"this proxy for {self.target!r} is closed (by close(proxy) or the end of its "
                             f"`with` block): connect() again for a new one")

    def _pick(self) -> str:
        """The instance for the next call: of those that haven't failed in the last moments, the one
        `health` prefers (the least busy, skipping any that went silent)."""
        uris = [self.target] if self._resolver is None else self._resolver.instances(self.target)
        if len(uris) == 1 and not self._bad:
            return uris[0]
        now = time.monotonic()
        good = [uri for uri in uris if self._bad.get(uri, 0.0) <= now]
        if not good and self._resolver:
            self._resolver.forget(self.target)
            uris = self.instances()
            good = [uri for uri in uris if self._bad.get(uri, 0.0) <= now]
        return self._health.choose(good or uris, self._probe)

    def _alternatives(self) -> bool:
        """True if an instance that hasn't failed lately and isn't suspect could take the next attempt."""
        now = time.monotonic()
        try:
            return any(self._bad.get(uri, 0.0) <= now and not self._health.suspect(uri)
                       for uri in self.instances())
        except LonjaError:
            return False

    def _mark_bad(self, uri: str, seconds: float = 2.0) -> None:
        """Skip `uri` for a moment and drop its pooled connections; ask the name server afresh."""
        now = time.monotonic()
        self._bad = {u: until for u, until in self._bad.items() if until > now}
        if seconds > 0:
            self._bad[uri] = now + seconds
        self._local.pop(uri, None)  # a host restarted at this address offers another local socket
        with self._lock:
            idle = self._idle.pop(uri, [])
        for connection in idle:
            release(connection)
        if self._resolver:
            self._resolver.forget(self.target)

    def _describe_once(self, deadline: float | None) -> dict[str, Any]:
        """Ask the daemon hosting the next instance to describe it, on a pooled connection to it."""
        connection = self._connect_any(deadline)
        uri = connection._lonja_uri
        description = self._invoke(connection, uri, "describe", (URI(uri).object,), {}, self.options, 0, deadline,
                                   object_id=DAEMON_NAME)
        self._health.answered(uri)
        return description

    def _connect_any(self, deadline: float | None) -> Proxy:
        """A connection to the next instance; any failure counts as one before a request was sent."""
        with _not_sent_yet():
            uri = self._pick()
            self._uri = uri
            return self._acquire(uri, self.options, deadline)

    def _acquire(self, uri: str, options: CallOptions, deadline: float | None) -> Proxy:
        """An idle pooled connection to `uri` whose peer is still there, or a new one (reached within the
        connect timeout, or the call's time left if less)."""
        self._check_open()
        while True:
            with self._lock:
                pool = self._idle.get(uri)
                connection = pool.pop() if pool else None
            if connection is None:
                break
            connection._pyroClaimOwnership()
            if time.monotonic() - connection._lonja_idle_since < IDLE_CHECK or _still_open(connection):
                return connection  # one that sat idle costs a system call: a host killed since is caught here
            release(connection)
        serializer = self._serializers.get(uri, self._serializer)
        local = self._local.get(uri)
        if local is not None:
            connection = self._bound_locally(uri, local, serializer, options, deadline)
            if connection is not None:
                return connection
        try:
            connection = self._bound(uri, serializer, options, deadline)
        except Pyro5.errors.CommunicationError as exc:
            if self._fallback is None or serializer == self._fallback or not handshake_dropped(exc):
                self._connect_failed(uri, exc)
                raise
            try:
                connection = self._bound(uri, self._fallback, options, deadline)
            except Pyro5.errors.CommunicationError:
                self._connect_failed(uri, exc)
                raise exc from None
            self._serializers[uri] = self._fallback
            log.info("%s dropped a %s handshake and took %s: it is called in %s", uri, serializer,
                     self._fallback, self._fallback)
        self._health.answered(uri)
        # the connections after this one go through the local socket, if the host offers one that works
        offer = local_address(getattr(connection, "_lonja_hello", None))
        usable = offer is not None and self._takes_local and offer not in self._local_failed
        self._local[uri] = offer if usable else None
        if self._meta is None:
            hello = getattr(connection, "_lonja_hello", {})
            self._meta = Metadata(methods=frozenset(connection._pyroMethods),
                                  attrs=frozenset(connection._pyroAttrs),
                                  oneway=frozenset(connection._pyroOneway),
                                  idempotent=frozenset(hello.get("idempotent", ())),
                                  generators=frozenset(hello.get("generators", ())),
                                  batchable=bool(hello.get("lonja")),
                                  host_describes="generators" in hello)
        return connection

    def _bound(self, uri: str, serializer: str, options: CallOptions, deadline: float | None,
               address: str | None = None) -> Proxy:
        """A new connection to `uri` (through `address`, if given) in `serializer`, handshake done (reached
        within the connect timeout, or the call's time left if less)."""
        connection = _Connection(address or uri)
        object.__setattr__(connection, "_lonja_uri", uri)
        object.__setattr__(connection, "_lonja_calls", 0)
        connection._pyroSerializer = serializer
        connection._pyroTimeout = _connect_timeout(options, deadline)
        connection._pyroHandshake = client_handshake(self._token, URI(uri).object)
        connection._pyroBind()
        connection._pyroConnection.busy_wait = self._busy_wait
        return connection

    def _bound_locally(self, uri: str, local: str, serializer: str, options: CallOptions,
                       deadline: float | None) -> Proxy | None:
        """A new connection to `uri`'s host through its local socket; None (and TCP from now on) if it cannot
        be reached there (another machine, or network namespace), is another user's, or another host answers."""
        shown = shown_address(local)
        try:
            connection = self._bound(uri, serializer, options, deadline, f"PYRO:{URI(uri).object}@./u:{local}")
        except Pyro5.errors.CommunicationError as exc:
            log.info("%s: its local socket %s failed (%s): calling it over TCP", uri, shown, exc)
        else:
            if local_address(getattr(connection, "_lonja_hello", None)) == local and _same_user(connection):
                return connection
            log.info("%s: another host, or another user's process, answered at %s: calling it over TCP", uri, shown)
            release(connection)
        self._local_failed.add(local)
        self._local[uri] = None
        return None

    def _connect_failed(self, uri: str, exc: Pyro5.errors.CommunicationError) -> None:
        """Raise AccessDenied if `uri` refused us; otherwise skip it for a while (longer if it timed out)."""
        error = self._connection_error(exc)
        if isinstance(error, AccessDenied):
            raise error from None
        if _timed_out(exc):
            self._health.timed_out(uri)
        self._mark_bad(uri)

    def _daemon(self, uri: str, timeout: float | None = None) -> Proxy:
        """A new connection to the daemon hosting `uri`, for the background health pings."""
        daemon = _Connection(f"PYRO:{DAEMON_NAME}@{URI(uri).location}")
        daemon._pyroHandshake = client_handshake(self._token)
        daemon._pyroSerializer = self._serializers.get(uri, self._serializer)
        daemon._pyroTimeout = timeout or self.options.connect_timeout
        return daemon

    def _probe(self, uri: str) -> None:
        """Raise unless the host of `uri` answers a ping within the connect timeout (health checks)."""
        with self._daemon(uri) as daemon:
            daemon.ping()

    def _connection_error(self, exc: BaseException) -> LonjaError:
        """AccessDenied when the service refused this caller (its token or TLS identity); ServiceUnreachable
        when it is busy, does not host the object, or does not answer."""
        tls = tls_error(exc)
        if tls is not None:
            return AccessDenied(tls_message(f"service {self.target!r} at {self._uri}", tls))
        refused = refusal_of(exc)
        if refused is not None and refused[0] is Refusal.DENIED:
            return AccessDenied(self._unreachable_message(exc))
        return ServiceUnreachable(self._unreachable_message(exc))

    def _unreachable_message(self, exc: BaseException | None) -> str:
        where = f" at {self._uri}" if self._uri else ""
        refused = refusal_of(exc)
        if refused is not None:
            return f"service {self.target!r}{where} refused the connection: {refused[1]}"
        return (f"service {self.target!r}{where} does not answer ({exc}): is it running? "
                f"Check with `lonja ls` and start it with `lonja serve`")


class ServiceProxy:
    """A thread-safe proxy for one remote object, found by name (through the name server) or by URI.

    Every public attribute is the service's: `proxy.NAME` is its remote method or attribute NAME, even
    `ping` or `close`. lonja's own operations take the proxy as an argument: `describe(proxy)`,
    `ping(proxy)`, `uri(proxy)`, `instances(proxy)`, `batch(proxy)`, `close(proxy)`.

    On an instance, `__doc__` (and so `help(proxy)`, IPython's `proxy?`) is the service's description:
    its class's docstring, its methods with signatures and first doc lines, its attributes (see
    `introspection`). A remote method, once looked up, is kept on the proxy, so later calls of it skip the
    lookup.
    """

    __doc__ = RemoteDoc(__doc__, lambda proxy: proxy._remote_doc())

    def __init__(self, target: str, *, ns: str | None = None, timeout: float | None = None,
                 retries: int | None = None, serializer: str | None = None, settings: Settings | None = None,
                 follow_changes: bool = True, interface: type | None = None,
                 client: ServiceClient | None = None) -> None:
        client = client or ServiceClient(target, ns=ns, timeout=timeout, retries=retries, serializer=serializer,
                                         settings=settings, follow_changes=follow_changes)
        object.__setattr__(self, "_client", client)
        forget = weakref.WeakMethod(self._forget_methods)  # no cycle: a dropped proxy is freed at once
        object.__setattr__(self, "_introspection", Introspection(client, lambda: _call_if_alive(forget)))
        if interface is not None:
            try:
                self._check_interface(interface)
            except BaseException:
                client.close()
                raise

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        client = self._client
        meta = client.metadata()
        if name in meta.attrs:
            return client.call("__getattr__", (name,), {})
        if name in meta.methods or self._introspection.has_method(name):
            method = RemoteMethod(client, name, client.options, self._introspection)
            vars(self)[name] = method
            return method
        raise AttributeError(f"{client.target} has no remote method or attribute {name!r}; "
                             f"it has: {', '.join(sorted(meta.methods | meta.attrs))}")

    def __setattr__(self, name: str, value: Any) -> None:
        client = self._client
        if name.startswith("_") or name not in client.metadata().attrs:
            raise AttributeError(f"{client.target} has no remote attribute {name!r}")
        client.call("__setattr__", (name, value), {})

    def __dir__(self) -> list[str]:
        meta = self._client.metadata()
        described = self._introspection.known()
        names = set(meta.methods | meta.attrs)
        if described is not None:
            names |= set(described["methods"]) | set(described["attributes"])
        return sorted(set(object.__dir__(self)) | names)

    def __repr__(self) -> str:
        client = self._client
        return f"<lonja proxy {client.target!r} at {client.last_uri or 'unresolved'}>"

    def __enter__(self) -> ServiceProxy:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._client.close()

    def _remote_doc(self) -> str:
        return self._introspection.service_doc()

    def _check_interface(self, interface: type) -> None:
        """InterfaceMismatch unless the service has what `interface` declares (its description is kept)."""
        description = self._introspection.description()
        meta = self._client.metadata()
        check_interface(interface, self._client.target, meta.methods | frozenset(description["methods"]),
                        meta.attrs | frozenset(description["attributes"]))

    def _forget_methods(self) -> None:
        """Drop the remote methods kept on the proxy (the service's description changed)."""
        for name, value in list(vars(self).items()):
            if isinstance(value, RemoteMethod):
                vars(self).pop(name, None)


class RemoteMethod:
    """A remote method: call it, or use `.oneway`, `.future`, `.aio` or `.options(...)`.

    On an instance, `__doc__` is the remote method's docstring and `__signature__` its signature (for
    `help()`, `inspect.signature` and IPython). Once its signature is known, arguments that do not fit it
    raise ArgumentMismatch (also a TypeError) before anything is sent; before that, a call the service
    answers with a TypeError is checked against the signature, fetched then.
    """

    __doc__ = RemoteDoc(__doc__, lambda method: method._remote_doc())
    __slots__ = ("__name__", "__qualname__", "_check", "_client", "_flags", "_introspection", "_name", "_options")

    def __init__(self, client: ServiceClient, name: str, options: CallOptions,
                 introspection: Introspection | None = None) -> None:
        self._client = client
        self._name = name
        self._options = options
        self._introspection = introspection
        self._check = None if introspection is None else introspection.checker(name)
        meta = client.known_metadata
        self._flags = None if meta is None else protocol.FLAGS_ONEWAY if name in meta.oneway else 0
        self.__name__ = name
        self.__qualname__ = f"{client.target}.{name}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._check is not None:
            self._checked(args, kwargs)
        flags = self._flags
        if flags is None:
            flags = protocol.FLAGS_ONEWAY if self._name in self._client.metadata().oneway else 0
        try:
            return self._client.call(self._name, args, kwargs, self._options, flags)
        except RemoteError as error:
            if error.remote_cause is not None:
                error.__cause__ = error.remote_cause
            if isinstance(error, TypeError):
                self._explain(error, args, kwargs)
            raise

    def oneway(self, *args: Any, **kwargs: Any) -> None:
        """Send the call and return at once; the service logs and counts its errors."""
        if self._check is not None:
            self._checked(args, kwargs)
        self._client.call(self._name, args, kwargs, self._options, protocol.FLAGS_ONEWAY)

    def future(self, *args: Any, **kwargs: Any) -> Future:
        """Run the call in the background; returns a concurrent.futures.Future.

        Many futures issued together share batch requests (see `dispatch`); each call runs once.
        """
        if self._check is not None:
            self._checked(args, kwargs)
        flags = protocol.FLAGS_ONEWAY if self._name in self._client.metadata().oneway else 0
        return self._client.dispatcher().submit(self._name, args, kwargs, self._options, flags)

    async def aio(self, *args: Any, **kwargs: Any) -> Any:
        """Await the call without blocking the event loop."""
        import asyncio  # loaded by the programs that await calls only

        if self._check is not None:
            self._checked(args, kwargs)
        if self._client.known_metadata is None:  # the first contact blocks: not on the event loop's thread
            await asyncio.get_running_loop().run_in_executor(shared_executor(self._client.workers),
                                                             self._client.metadata)
        flags = protocol.FLAGS_ONEWAY if self._name in self._client.metadata().oneway else 0
        return await self._client.dispatcher().submit_async(self._name, args, kwargs, self._options, flags)

    def options(self, *, timeout: float | None = _KEEP, retries: int | None = None) -> RemoteMethod:
        """The same method with other call options: `p.m.options(timeout=2, retries=3)(...)`.

        `timeout` is seconds for the whole call, retries included; None (or 0) means no limit.
        Left out, an option keeps the proxy's value.
        """
        changes: dict[str, Any] = {}
        if timeout is not _KEEP:
            changes["timeout"] = no_limit_as_none(timeout)
        if retries is not None:
            changes["retries"] = retries
        return RemoteMethod(self._client, self._name, self._options._replace(**changes), self._introspection)

    @property
    def __signature__(self) -> inspect.Signature | None:
        """The remote method's signature (None if its host does not say: a plain Pyro5 object)."""
        if self._introspection is None:
            return None
        try:
            return self._introspection.signature(self._name)
        except LonjaError:
            return None

    def __repr__(self) -> str:
        described = self._introspection.known() if self._introspection is not None else None
        info = described["methods"].get(self._name) if described is not None else None
        signature = info["signature"] if info is not None else ""
        return f"<remote method {self._client.target}.{self._name}{signature}>"

    def _remote_doc(self) -> str:
        if self._introspection is None:
            return f"{self._client.target}.{self._name}: a remote method"
        return self._introspection.method_doc(self._name)

    def _explain(self, error: RemoteError, args: tuple, kwargs: dict[str, Any]) -> None:
        """After the service answered a call with a TypeError: raise ArgumentMismatch (with the signature,
        fetched now if it was not known) if the arguments do not fit it; later calls are checked before
        they are sent."""
        if self._introspection is None:
            return
        try:
            self._introspection.description()
        except LonjaError:
            return
        checker = self._introspection.checker(self._name)
        if checker is None:
            return
        try:
            checker(*args, **kwargs)
        except TypeError as exc:
            mismatch = self._introspection.rejected(self._name, exc, args, kwargs)
            if mismatch is not None:
                raise mismatch from error

    def _checked(self, args: tuple, kwargs: dict[str, Any]) -> None:
        """Raise ArgumentMismatch if the arguments do not fit the method's known signature."""
        assert self._check is not None and self._introspection is not None
        try:
            self._check(*args, **kwargs)
        except TypeError as exc:
            error = self._introspection.rejected(self._name, exc, args, kwargs)
            if error is not None:
                raise error from None


T = TypeVar("T")


@overload
def connect(target: str, *, interface: None = None, ns: str | None = None, timeout: float | None = None,
            retries: int | None = None, serializer: str | None = None, settings: Settings | None = None,
            follow_changes: bool = True) -> ServiceProxy: ...


@overload
def connect(target: str, *, interface: Callable[..., T], ns: str | None = None, timeout: float | None = None,
            retries: int | None = None, serializer: str | None = None, settings: Settings | None = None,
            follow_changes: bool = True) -> T: ...


def connect(target: str, *, interface: Callable[..., T] | None = None, ns: str | None = None,
            timeout: float | None = None, retries: int | None = None, serializer: str | None = None,
            settings: Settings | None = None, follow_changes: bool = True) -> ServiceProxy | T:
    """A proxy for the service registered as `target` (or a PYRO:/PYRONAME: URI).

    `ns` is the name server as "host:port" (default: settings, LONJA_NS, else 127.0.0.1:9090);
    `timeout` is the seconds each call may take, retries included (default: client.timeout, 30; 0 = no
    limit); `retries` how often a call that failed before it was sent is tried again (default:
    client.retries); `serializer` one of msgpack, serpent, json, marshal. Nothing is contacted until the
    first call.

    `interface` (a typing.Protocol, or any class) types the proxy for type checkers and IDEs (it is typed
    as a callable returning T, since type checkers refuse a Protocol where `type[T]` is expected), and is
    checked now: the service is contacted, and InterfaceMismatch names what it lacks. Its description
    (signatures, docs) is fetched too, so calls are checked against the signatures from the first one.

    `settings` default to this process's: those the `lonja` command installed, else the defaults, lonja.toml
    and LONJA_* variables as read once, on the first connect() (pass `load_settings()` for a fresh read).
    The first connect() also applies them to Pyro5 unless the `lonja` command did already.
    `follow_changes=False` suits a program that calls once and ends: no thread follows the name server's
    changes (see `resolver`).
    """
    if not isinstance(target, str) or not target.strip():
        raise ValueError("connect() needs a service name or URI, e.g. connect('echo')")
    if interface is not None and not isinstance(interface, type):
        raise UsageError(f"interface must be a class (a typing.Protocol), got {interface!r}")
    proxy = ServiceProxy(target.strip(), ns=ns, timeout=timeout, retries=retries, serializer=serializer,
                         settings=settings, follow_changes=follow_changes, interface=interface)
    return proxy if interface is None else cast(T, proxy)


# -- lonja's own operations on a proxy ----------------------------------------------------------------

def describe(proxy: ServiceProxy, *, signatures: bool = True) -> dict[str, Any]:
    """The service's methods, attributes and flags, with signatures and docs (asks its host).

    With `signatures=False`, only what connecting brought (no request of its own). A plain Pyro5 host has
    no signatures to give: its description has names and flags only (`"signature": "(...)"`,
    `"params": None`, `"class": ""`).
    """
    return _client_of(proxy).describe(signatures)


def ping(proxy: ServiceProxy) -> float:
    """Round-trip time of an empty request to the service's host, in seconds."""
    return _client_of(proxy).ping()


def uri(proxy: ServiceProxy) -> str:
    """The PYRO: URI of the instance the proxy called last (resolving the name if there was no call)."""
    return _client_of(proxy).uri


def instances(proxy: ServiceProxy) -> list[str]:
    """The URIs of every serving instance behind the proxy's name."""
    return _client_of(proxy).instances()


def batch(proxy: ServiceProxy, oneway: bool = False) -> Batch:
    """Record calls and send them in one request: `with batch(p) as b: b.m(1)`, then `b.results()`."""
    return Batch(_client_of(proxy), oneway)


def close(proxy: ServiceProxy) -> None:
    """Close the proxy's connections; calls on it afterwards raise UsageError (`with` does this)."""
    _client_of(proxy).close()


def _client_of(proxy: ServiceProxy) -> ServiceClient:
    if not isinstance(proxy, ServiceProxy):
        raise TypeError(f"expected a proxy from connect(), got {type(proxy).__name__}")
    return proxy._client


# -- helpers ----------------------------------------------------------------------------------------

def _description_of(meta: Metadata) -> dict[str, Any]:
    """A description in `describe`'s shape from what a connection brought: names and flags, no
    signatures or docs (`None` where a value is not known)."""
    methods = {name: {"signature": "(...)", "params": None, "returns": None, "doc": "",
                      "oneway": name in meta.oneway, "idempotent": name in meta.idempotent,
                      "async": False, "generator": name in meta.generators}
               for name in sorted(meta.methods)}
    attributes = {name: {"doc": "", "writable": None} for name in sorted(meta.attrs)}
    return {"class": "", "doc": "", "methods": methods, "attributes": attributes}


def _call_if_alive(method: weakref.WeakMethod) -> None:
    bound = method()
    if bound is not None:
        bound()


def no_limit_as_none(seconds: float | None) -> float | None:
    """A timeout as lonja keeps it: seconds, or None for no limit (given as None or 0, as in Pyro5)."""
    if seconds is None or seconds == 0:
        return None
    if seconds < 0:
        raise ValueError(f"a timeout must be positive, or 0/None for no limit; got {seconds}")
    return float(seconds)


def release(proxy: Proxy) -> None:
    """Close one pooled connection, whichever thread used it last."""
    try:
        proxy._pyroClaimOwnership()
        proxy._pyroRelease()
    except Exception:
        pass


@contextmanager
def _not_sent_yet() -> Iterator[None]:
    """Mark every failure in the block as one that happened before the request was sent."""
    try:
        yield
    except (LonjaError, Pyro5.errors.CommunicationError) as exc:
        raise _NotSent() from exc


def _same_user(connection: Proxy) -> bool:
    """True if the process at the other end of a Unix socket connection runs as this user (SO_PEERCRED):
    no call goes to another user's process."""
    try:
        credentials = connection._pyroConnection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS)
    except (AttributeError, OSError):
        return False
    return struct.unpack("3i", credentials)[1] == os.getuid()


_CREDENTIALS = struct.calcsize("3i")  # struct ucred: pid, uid, gid


def _seconds_left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _connect_timeout(options: CallOptions, deadline: float | None) -> float:
    """Seconds to reach an instance: the connect timeout, or less if the call's time is nearly up."""
    left = _seconds_left(deadline)
    return options.connect_timeout if left is None else max(0.001, min(options.connect_timeout, left))


def _close_enough(current: float | None, wanted: float | None) -> bool:
    """True if a connection's timeout `current` may stand for `wanted` (within 10 ms or 1 %)."""
    if current is None or wanted is None:
        return current is wanted
    return abs(current - wanted) <= 0.01 + 0.01 * wanted


def _timed_out(exc: BaseException) -> bool:
    """True if a connection attempt failed because the peer did not answer in time (not a refusal)."""
    return isinstance(exc, Pyro5.errors.TimeoutError) or isinstance(exc.__cause__, TimeoutError)


def _still_open(proxy: Proxy) -> bool:
    """False if the peer closed an idle connection (it would be readable: EOF or RST)."""
    connection = proxy._pyroConnection
    if connection is None:
        return False
    try:
        readable, _, _ = select.select([connection.sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _backoff(attempt: int, at_most: float | None = None, base: float = 0.05, cap: float = 1.0) -> float:
    """Exponential backoff with full jitter: a random wait up to base * 2^attempt, at most `cap` (and
    at most `at_most`, the time the call has left)."""
    wait = random.uniform(0.5, 1.0) * min(cap, base * (2 ** attempt))
    return wait if at_most is None else max(0.0, min(wait, at_most))


from . import references  # noqa: E402, F401  (it builds on the classes above, and sends proxies by reference)
