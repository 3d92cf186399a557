"""The proxy `connect()` returns: call remote methods like local ones, from any thread, without waiting.

    with connect("echo") as echo:
        echo.echo(42)                      # a plain call
        echo.slow.oneway(1)                # fire and forget
        f = echo.slow.future(0.5)          # concurrent.futures.Future
        await echo.slow.aio(0.5)           # asyncio
        echo.slow.options(timeout=2)(1)    # per-call options

Underneath, each call borrows a Pyro5 connection from a small pool per instance, so one proxy serves
many threads (plain Pyro5 pins a proxy to the thread that made it). A name resolves to every serving
instance (see `resolver`); calls go round them and move away from one that fails, and a service
restarted on a new port is found again through the name server.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import select
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

import Pyro5.errors
from Pyro5 import protocol
from Pyro5.client import Proxy
from Pyro5.core import DAEMON_NAME, URI

from lonja.config import current_settings, import_pyro
from lonja.config.auth import client_token

from .errors import (AccessDenied, CallTimeout, LonjaError, MessageTooLarge, NameServerUnreachable,
                     OutcomeUnknown, SerializationError, ServiceUnreachable, remote_error_from)
from .batch import Batch
from .dispatch import Dispatcher
from .executor import shared_executor
from .naming import tls_failure, tls_message
from .resolver import Resolver
from .stream import RemoteStream

import_pyro()  # lonja's serializer variants


@dataclass(frozen=True)
class CallOptions:
    """How one call is made: its timeout (seconds, None = none) and retries before the request is sent."""

    timeout: float | None = None
    retries: int = 3
    connect_timeout: float = 2.0


class _NotSent(Exception):
    """Internal: the request never left this process, so it is safe to try again."""


class _Connection(Proxy):
    """One Pyro5 connection that introduces itself as a lonja client and keeps the host's answer."""

    def _pyroValidateHandshake(self, response: Any) -> None:
        object.__setattr__(self, "_lonja_hello", response if isinstance(response, dict) else {})


class ServiceProxy:
    """A thread-safe proxy for one remote object, found by name (through the name server) or by URI."""

    def __init__(self, target: str, *, ns: str | None = None, timeout: float | None = None,
                 retries: int | None = None, serializer: str | None = None) -> None:
        settings = current_settings()
        self._target = target
        self._by_name = not target.startswith(("PYRO:", "PYRONAME:", "PYROMETA:"))
        if target.startswith("PYRONAME:"):
            name, _, location = target[len("PYRONAME:"):].partition("@")
            self._target, self._by_name, ns = name, True, ns or location or None
        self._ns_address = ns or settings.ns_address
        self._serializer = serializer or settings["client.serializer"]
        self._token = client_token(settings)
        self._options = CallOptions(
            timeout=timeout if timeout is not None else (settings["client.timeout"] or None),
            retries=settings["client.retries"] if retries is None else retries,
            connect_timeout=settings["client.connect_timeout"] or 2.0)
        self._pool_size = settings["client.pool_size"]
        self._resolver = Resolver.for_address(self._ns_address, self._options.connect_timeout) \
            if self._by_name else None
        self._idle: dict[str, list[Proxy]] = {}
        self._bad: dict[str, float] = {}
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._uri: str | None = None if self._by_name else target
        self._meta: dict[str, Any] | None = None
        self._dispatch: Dispatcher | None = None
        self._closed = False

    # -- the Python surface -------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        meta = self._metadata()
        if name in meta["attrs"]:
            return self._call("__getattr__", (name,), {}, self._options)
        if name in meta["methods"]:
            return RemoteMethod(self, name, self._options)
        raise AttributeError(f"{self._target} has no remote method or attribute {name!r}; "
                             f"it has: {', '.join(sorted(meta['methods'] | meta['attrs']))}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        elif name in self._metadata()["attrs"]:
            self._call("__setattr__", (name, value), {}, self._options)
        else:
            raise AttributeError(f"{self._target} has no remote attribute {name!r}")

    def __dir__(self) -> list[str]:
        meta = self._metadata()
        return sorted(set(super().__dir__()) | meta["methods"] | meta["attrs"])

    def __repr__(self) -> str:
        return f"<lonja proxy {self._target!r} at {self._uri or 'unresolved'}>"

    def __enter__(self) -> "ServiceProxy":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection. The proxy reconnects if it is used again."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for pool in idle.values():
            for proxy in pool:
                release(proxy)

    @property
    def uri(self) -> str:
        """The PYRO: URI of the instance this proxy called last (resolving the name if needed)."""
        if self._uri is None:
            self._uri = self._pick()
        return self._uri

    @property
    def instances(self) -> list[str]:
        """The URIs of every serving instance behind this proxy's name."""
        return list(self._instances())

    def batch(self, oneway: bool = False) -> "Batch":
        """Record calls and send them in one request: `with p.batch() as b: b.m(1)`, then `b.results()`."""
        return Batch(self, oneway)

    def describe(self) -> dict[str, Any]:
        """Methods with signatures and docs, attributes and oneway flags (asks the hosting daemon)."""
        uri = URI(self.uri)
        daemon = _Connection(f"PYRO:{DAEMON_NAME}@{uri.location}")
        daemon._pyroHandshake = {"lonja": 1, "token": self._token}
        daemon._pyroSerializer = self._serializer
        daemon._pyroTimeout = self._options.connect_timeout
        try:
            with daemon:
                return daemon.describe(uri.object)
        except Pyro5.errors.CommunicationError as exc:
            raise self._connection_error(exc) from None

    def ping(self) -> float:
        """Round-trip time of an empty request to the service, in seconds."""
        start = time.perf_counter()
        proxy = self._acquire_or_raise()
        try:
            proxy._pyroInvoke("ping", (), {}, objectId=DAEMON_NAME)
        except Pyro5.errors.CommunicationError as exc:
            release(proxy)
            raise ServiceUnreachable(self._unreachable_message(exc)) from None
        self._give_back(proxy)
        return time.perf_counter() - start

    # -- calls --------------------------------------------------------------------------------------

    def _call(self, method: str, args: tuple, kwargs: dict, options: CallOptions, flags: int = 0) -> Any:
        """Make one call; retry failures that happened before the request was sent."""
        return self._retrying(lambda: self._call_once(method, args, kwargs, options, flags), method, options)

    def _retrying(self, attempt_once: Callable[[], Any], method: str | None, options: CallOptions) -> Any:
        """Run `attempt_once`, again after a backoff if it failed before sending (or sent an idempotent call)."""
        attempt = 0
        while True:
            try:
                return attempt_once()
            except _NotSent as not_sent:
                cause = not_sent.__cause__
                if attempt >= options.retries or isinstance(cause, (NameServerUnreachable, AccessDenied)):
                    if isinstance(cause, LonjaError):
                        raise cause from None
                    raise ServiceUnreachable(self._unreachable_message(cause)) from None
            except OutcomeUnknown:
                if attempt >= options.retries or method is None or not self._is_idempotent(method):
                    raise
            attempt += 1
            if not self._alternatives():
                time.sleep(_backoff(attempt))

    def _call_once(self, method: str, args: tuple, kwargs: dict, options: CallOptions, flags: int) -> Any:
        proxy = self._acquire_before_send(options)
        uri = proxy._lonja_uri
        proxy._pyroTimeout = options.timeout
        try:
            result = proxy._pyroInvoke(method, args, kwargs, flags=flags)
        except Pyro5.errors.SerializeError as exc:
            if getattr(exc, "_pyroTraceback", None):  # the service could not serialize its answer
                self._give_back(proxy)
                raise remote_error_from(exc) from None
            self._give_back(proxy)
            raise SerializationError(f"cannot send the arguments of {method}() with the {self._serializer} "
                                     f"serializer: {exc} (see README: what each serializer keeps)") from None
        except Pyro5.errors.TimeoutError:
            release(proxy)
            self._mark_bad(uri, 0.0)
            raise CallTimeout(f"{self._target}.{method} did not answer within {options.timeout} s; "
                              f"it may still be running (raise the timeout with --timeout)") from None
        except Pyro5.errors.CommunicationError as exc:
            if isinstance(exc, Pyro5.errors.ProtocolError) and str(exc).startswith("message too large"):
                # the service's answer (the request was read to its end), or Pyro5's own check
                self._give_back(proxy)
                raise MessageTooLarge(str(exc)) from None
            release(proxy)
            self._mark_bad(uri)
            if _before_send(exc):
                raise _NotSent() from exc
            raise OutcomeUnknown(f"the connection to {self._target} failed during {method}(): the call may or "
                                 f"may not have run ({exc})") from None
        except Pyro5.errors.PyroError as exc:
            if isinstance(exc, Pyro5.errors.DaemonError) and "unknown object" in str(exc):
                release(proxy)
                self._mark_bad(uri)
                raise _NotSent() from ServiceUnreachable(
                    f"{self._target} is no longer hosted at {uri}: the service stopped")
            self._give_back(proxy)
            raise remote_error_from(exc) from None
        except LonjaError:
            self._give_back(proxy)
            raise
        except Exception as exc:
            self._give_back(proxy)
            raise remote_error_from(exc) from None
        if isinstance(result, Iterator) and type(result).__name__ == "_StreamResultIterator":
            return RemoteStream(self, proxy, result)
        self._give_back(proxy)
        return result

    def _is_idempotent(self, method: str) -> bool:
        return self._meta is not None and method in self._meta["idempotent"]

    # -- instances and connections ------------------------------------------------------------------

    def _instances(self) -> list[str]:
        return self._resolver.instances(self._target) if self._resolver else [self._target]

    def _pick(self) -> str:
        """The next instance to call, round robin over those that haven't failed in the last moments."""
        uris = self._instances()
        if len(uris) == 1 and not self._bad:
            return uris[0]
        now = time.monotonic()
        good = [uri for uri in uris if self._bad.get(uri, 0.0) <= now]
        if not good and self._resolver:
            self._resolver.forget(self._target)
            uris = self._instances()
            good = [uri for uri in uris if self._bad.get(uri, 0.0) <= now]
        candidates = good or uris
        return candidates[next(self._turn) % len(candidates)]

    def _dispatcher(self) -> Dispatcher:
        with self._lock:
            if self._dispatch is None:
                self._dispatch = Dispatcher(self, workers=self._pool_size)
            return self._dispatch

    def _alternatives(self) -> bool:
        """True if another instance that hasn't failed lately could take the next attempt."""
        now = time.monotonic()
        try:
            return any(self._bad.get(uri, 0.0) <= now for uri in self._instances())
        except LonjaError:
            return False

    def _mark_bad(self, uri: str, seconds: float = 2.0) -> None:
        """Skip `uri` for a moment and drop its pooled connections; ask the name server afresh."""
        now = time.monotonic()
        self._bad = {u: until for u, until in self._bad.items() if until > now}
        if seconds > 0:
            self._bad[uri] = now + seconds
        with self._lock:
            idle = self._idle.pop(uri, [])
        for proxy in idle:
            release(proxy)
        if self._resolver:
            self._resolver.forget(self._target)

    def _acquire(self, options: CallOptions) -> Proxy:
        """An idle pooled connection to the next instance whose peer is still there, or a new one."""
        if self._closed:
            raise LonjaError("this proxy is closed")
        uri = self._pick()
        self._uri = uri
        while True:
            with self._lock:
                pool = self._idle.get(uri)
                proxy = pool.pop() if pool else None
            if proxy is None:
                break
            proxy._pyroClaimOwnership()
            if _still_open(proxy):
                return proxy
            release(proxy)
        proxy = _Connection(uri)
        object.__setattr__(proxy, "_lonja_uri", uri)
        proxy._pyroSerializer = self._serializer
        proxy._pyroTimeout = options.connect_timeout
        proxy._pyroHandshake = {"lonja": 1, "object": URI(uri).object, "token": self._token}
        try:
            proxy._pyroBind()
        except Pyro5.errors.CommunicationError as exc:
            error = self._connection_error(exc)
            if isinstance(error, AccessDenied):
                raise error from None
            self._mark_bad(uri)
            raise
        if self._meta is None:
            hello = getattr(proxy, "_lonja_hello", {})
            self._meta = {"methods": frozenset(proxy._pyroMethods), "attrs": frozenset(proxy._pyroAttrs),
                          "oneway": frozenset(proxy._pyroOneway),
                          "idempotent": frozenset(hello.get("idempotent", ())),
                          "generators": frozenset(hello.get("generators", ())),
                          "batchable": bool(hello.get("lonja"))}
        return proxy

    def _give_back(self, proxy: Proxy) -> None:
        with self._lock:
            pool = self._idle.setdefault(proxy._lonja_uri, [])
            if len(pool) < self._pool_size and proxy._pyroConnection is not None:
                pool.append(proxy)
                return
        release(proxy)

    def _metadata(self) -> dict[str, frozenset[str]]:
        if self._meta is None:
            self._retrying(lambda: self._give_back(self._acquire_before_send(self._options)), None, self._options)
        return self._meta

    def _acquire_before_send(self, options: CallOptions) -> Proxy:
        """`_acquire`, with every failure marked as one that happened before anything was sent."""
        try:
            return self._acquire(options)
        except (LonjaError, Pyro5.errors.CommunicationError) as exc:
            raise _NotSent() from exc

    def _acquire_or_raise(self) -> Proxy:
        return self._retrying(lambda: self._acquire_before_send(self._options), None, self._options)

    def _connection_error(self, exc: BaseException) -> LonjaError:
        """AccessDenied when the service refused our token or TLS identity, ServiceUnreachable otherwise."""
        text = str(exc)
        if tls_failure(text):
            return AccessDenied(tls_message(f"service {self._target!r} at {self._uri}", text))
        if "rejected" in text and "token" in text:
            return AccessDenied(self._unreachable_message(exc))
        return ServiceUnreachable(self._unreachable_message(exc))

    def _unreachable_message(self, exc: BaseException | None) -> str:
        where = f" at {self._uri}" if self._uri else ""
        text = str(exc)
        if "rejected" in text:
            return f"service {self._target!r}{where} refused the connection: {text.split('rejected:', 1)[-1].strip()}"
        return (f"service {self._target!r}{where} does not answer ({exc}): is it running? "
                f"Check with `lonja ls` and start it with `lonja serve`")


class RemoteMethod:
    """A remote method: call it, or use `.oneway`, `.future`, `.aio` or `.options(...)`."""

    def __init__(self, proxy: ServiceProxy, name: str, options: CallOptions) -> None:
        self._proxy = proxy
        self._name = name
        self._options = options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flags = protocol.FLAGS_ONEWAY if self._name in self._proxy._metadata()["oneway"] else 0
        return self._proxy._call(self._name, args, kwargs, self._options, flags)

    def oneway(self, *args: Any, **kwargs: Any) -> None:
        """Send the call and return at once; the service logs and counts its errors."""
        self._proxy._call(self._name, args, kwargs, self._options, protocol.FLAGS_ONEWAY)

    def future(self, *args: Any, **kwargs: Any) -> Future:
        """Run the call in the background; returns a concurrent.futures.Future.

        Many futures issued together share batch requests (see `dispatch`); each call runs once.
        """
        meta = self._proxy._metadata()
        flags = protocol.FLAGS_ONEWAY if self._name in meta["oneway"] else 0
        return self._proxy._dispatcher().submit(self._name, args, kwargs, self._options, flags)

    async def aio(self, *args: Any, **kwargs: Any) -> Any:
        """Await the call without blocking the event loop."""
        if self._proxy._meta is None:  # the first contact blocks: not on the event loop's thread
            await asyncio.get_running_loop().run_in_executor(shared_executor(), self._proxy._metadata)
        return await asyncio.wrap_future(self.future(*args, **kwargs))

    def options(self, *, timeout: float | None = None, retries: int | None = None) -> "RemoteMethod":
        """The same method with other call options: `p.m.options(timeout=2, retries=3)(...)`."""
        changes: dict[str, Any] = {}
        if timeout is not None:
            changes["timeout"] = timeout or None
        if retries is not None:
            changes["retries"] = retries
        return RemoteMethod(self._proxy, self._name, replace(self._options, **changes))

    def __repr__(self) -> str:
        return f"<remote method {self._proxy._target}.{self._name}>"


def connect(target: str, *, ns: str | None = None, timeout: float | None = None, retries: int | None = None,
            serializer: str | None = None) -> ServiceProxy:
    """A proxy for the service registered as `target` (or a PYRO:/PYRONAME: URI).

    `ns` is the name server as "host:port" (default: settings, LONJA_NS, else 127.0.0.1:9090);
    `timeout` is the default per-call timeout in seconds; `retries` how often a call that failed before
    it was sent is tried again (default: client.retries); `serializer` one of msgpack, serpent, json,
    marshal. Nothing is contacted until the first call.
    """
    if not isinstance(target, str) or not target.strip():
        raise ValueError("connect() needs a service name or URI, e.g. connect('echo')")
    return ServiceProxy(target.strip(), ns=ns, timeout=timeout, retries=retries, serializer=serializer)


def release(proxy: Proxy) -> None:
    """Close one pooled connection, whichever thread used it last."""
    try:
        proxy._pyroClaimOwnership()
        proxy._pyroRelease()
    except Exception:
        pass


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


def _before_send(exc: Exception) -> bool:
    text = str(exc)
    return text.startswith(("cannot connect", "connection to")) or "rejected" in text


def _backoff(attempt: int, base: float = 0.05, cap: float = 1.0) -> float:
    """Exponential backoff with full jitter: a random wait up to base * 2^attempt, at most `cap`."""
    return random.uniform(0.5, 1.0) * min(cap, base * (2 ** attempt))
