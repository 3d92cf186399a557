"""The service host's Pyro5 daemon: what it adds to the shared dispatch of `GuardedDaemon`.

It differs from Pyro5's `Daemon.handleRequest` in these ways, each closing a gap users hit:
- oneway calls run on a bounded executor (Pyro5 starts a new thread per oneway call, without limit);
  their errors are logged and counted instead of lost;
- an `async def` method is awaited on the host's event loop (Pyro5 tries to serialize the coroutine);
- a service's own exception travels with its type name and traceback (see `lonja.config.wire`);
- a request over `limits.max_message_size` (after decompression) gets "message too large" as its
  answer, and the connection stays usable (the shared `GuardedDaemon.receive_request`);
- the daemon object also answers `describe(object_id)` (signatures and docs) and `stats()`;
- a lonja client's handshake is answered with the object's `@idempotent` and generator methods, and
  the host's local socket (`local_socket`), which a client on the same machine then calls through;
- objects go by reference (`share`, `@remote`, and Pyro5's autoproxy of registered objects) in lonja
  proxies that hold them under a lease, and a proxy that comes back arrives as its object (Pyro5#92; see
  `lonja.config.sharing` and `.sharing`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from Pyro5 import errors
from Pyro5.callcontext import current_context
from Pyro5.server import DaemonObject, _get_attribute, _unpack_weakref, expose

from lonja.config import import_pyro
from lonja.config.auth import TokenTable
from lonja.config.daemon import GuardedDaemon
from lonja.config.limits import Limits
from lonja.config.sharing import REFERENCES, SharedTable, SharingMethods, install_sharing, replying
from lonja.config.transport import GuardedServer
from lonja.config.wire import SLOW, install_encoder, is_lonja_handshake, server_handshake

from .describe import call_hints, describe
from .sharing import decoding, install_reference_decoder

log = logging.getLogger("lonja.services")

import_pyro()
install_encoder()
install_sharing()
install_reference_decoder()


@expose
class HostDaemonObject(SharingMethods, DaemonObject):
    """Pyro5's daemon object (`Pyro.Daemon`) plus lonja's introspection, counters and shared objects."""

    def describe(self, objectId: str) -> dict[str, Any]:
        """Methods with signatures and docs, attributes and oneway flags of a hosted object, and how many
        objects its host shares by reference (`shared`)."""
        obj = _unpack_weakref(self.daemon.objectsById.get(objectId))
        if obj is None:
            raise errors.DaemonError(f"unknown object {objectId!r}")
        return {**describe(obj), "shared": len(self.daemon.shared)}

    def stats(self) -> dict[str, int]:
        """Counters of this host: oneway calls done and failed, calls served, live threads, shared objects,
        connections through the local socket."""
        return self.daemon.stats()


class EventLoopThread:
    """An asyncio loop in a background thread, started on first use, for `async def` methods."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._get_loop()).result()

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="lonja-asyncio", daemon=True).start()
            return self._loop

    def close(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None


class HostDaemon(GuardedDaemon):
    """A guarded daemon with bounded oneway execution, async methods and faithful remote exceptions.

    `local_socket`: also listen on an abstract Unix socket (Linux) that lonja clients on this machine
    switch to (not with Pyro5's `thread` server, nor under TLS); the attribute `local_socket` then holds
    its address.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, limits: Limits | None = None, *,
                 oneway_workers: int = 8, servertype: str = "adaptive", max_threads: int = 64,
                 tokens: TokenTable | None = None, reference_lease: float = 30.0, local_socket: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(host, port, limits or Limits(), servertype=servertype, threads=max_threads, tokens=tokens,
                         interface=HostDaemonObject, **kwargs)
        self.local_socket = self.transportServer.listen_locally() if local_socket and servertype != "thread" \
            else None
        self.shared = SharedTable(self, reference_lease)
        self._oneway = ThreadPoolExecutor(max_workers=oneway_workers, thread_name_prefix="lonja-oneway")
        self._loop = EventLoopThread()
        self._counts = {"calls": 0, "oneway_submitted": 0, "oneway_done": 0, "oneway_failed": 0}
        self._counts_lock = threading.Lock()

    def stats(self) -> dict[str, int]:
        with self._counts_lock:
            counts = dict(self._counts)
        counts["threads"] = threading.active_count()
        counts["oneway_pending"] = counts["oneway_submitted"] - counts["oneway_done"] - counts["oneway_failed"]
        counts["shared"] = len(self.shared)
        server = self.transportServer
        counts["local_connections"] = server.local_connections() if isinstance(server, GuardedServer) else 0
        return counts

    def housekeeping(self) -> None:
        """Drop shared objects whose holders went away for longer than a lease."""
        self.shared.sweep()

    def proxyFor(self, objectOrId: Any, nat: bool = True) -> Any:
        """Pyro5's proxy for a registered object; in a reply, its receiver learns it holds a reference."""
        proxy = super().proxyFor(objectOrId, nat)
        current_context.response_annotations[REFERENCES] = self.shared.lease_text
        return proxy

    def close(self) -> None:
        self.shared.clear()
        super().close()
        self._oneway.shutdown(wait=False, cancel_futures=True)
        self._loop.close()

    def handshake_reply(self, conn: Any, data: Any) -> Any:
        """A lonja client also learns its object's idempotent and generator methods, and this host's local
        socket."""
        if is_lonja_handshake(data):
            obj = _unpack_weakref(self.objectsById.get(data.get("object")))
            extra: dict[str, Any] = dict(call_hints(obj)) if obj is not None else {}
            if self.local_socket is not None:
                extra["local"] = self.local_socket
            return server_handshake(**extra)
        return super().handshake_reply(conn, data)

    def _count(self, key: str) -> None:
        with self._counts_lock:
            self._counts[key] += 1

    def _run(self, method: Any, vargs: Any, kwargs: Any) -> Any:
        """The call itself; an `async def` method is awaited on the host's event loop."""
        result = method(*vargs, **kwargs)
        if inspect.iscoroutine(result):
            result = self._loop.run(result)
        return result

    def _run_oneway(self, method: Any, vargs: Any, kwargs: Any, context: dict, client_addr: Any) -> None:
        current_context.from_global(context)
        self._finish_oneway(method, vargs, kwargs, client_addr)

    def _finish_oneway(self, method: Any, vargs: Any, kwargs: Any, client_addr: Any) -> None:
        try:
            self._invoke(method, vargs, kwargs)
        except Exception as exc:
            self._count("oneway_failed")
            log.error("oneway call %s failed: %s: %s", getattr(method, "__name__", method), type(exc).__name__, exc)
            self.methodcall_error_handler(self, client_addr, method, vargs, kwargs, exc)
        else:
            self._count("oneway_done")

    def _note_call(self, obj: Any) -> None:
        if not isinstance(obj, HostDaemonObject):  # the host's own introspection is not a call it serves
            self._count("calls")

    def _start_oneway(self, method: Any, vargs: Sequence[Any], kwargs: dict[str, Any]) -> None:
        """Run a oneway call of a method measured quick here at once, in this thread (the connection waits no
        longer than for a plain call's reply); queue any other on the host's bounded executor."""
        self._count("oneway_submitted")
        if self._is_quick(method):
            self._finish_oneway(method, vargs, kwargs, current_context.client_sock_addr)
            return
        self._oneway.submit(self._run_oneway, method, vargs, kwargs, current_context.to_global(),
                            current_context.client_sock_addr)

    def _loads_call(self, msg: Any) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        """A request's body; a proxy in its arguments arrives as its object or a lonja proxy (`.sharing`)."""
        with decoding(self):
            return super()._loads_call(msg)

    def _dumps_result(self, serializer_id: int, data: Any) -> bytes:
        """A result's bytes; shared objects in it are exported by this host (`lonja.config.sharing`)."""
        with replying(self.shared):
            return super()._dumps_result(serializer_id, data)

    def _run_call(self, method: Any, vargs: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """The base's call; the reply of a method that is slow here says so (`wire.SLOW`)."""
        result = super()._run_call(method, vargs, kwargs)
        if self._is_slow(method):
            current_context.response_annotations[SLOW] = b""
        return result

    def _run_batch(self, obj: Any, calls: Sequence[Any]) -> list[Any]:
        """The base's batch; its reply names the methods in it that are slow here."""
        results = super()._run_batch(obj, calls)
        slow = {name for name, _, _ in calls[:len(results)] if self._is_slow(_get_attribute(obj, name))}
        if slow:
            current_context.response_annotations[SLOW] = ",".join(sorted(slow)).encode()
        return results
