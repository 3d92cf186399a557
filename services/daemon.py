"""The service host's Pyro5 daemon: how one request is dispatched to a hosted object.

It differs from Pyro5's `Daemon.handleRequest` in these ways, each closing a gap users hit:
- oneway calls run on a bounded executor (Pyro5 starts a new thread per oneway call, without limit);
  their errors are logged and counted instead of lost;
- an `async def` method is awaited on the host's event loop (Pyro5 tries to serialize the coroutine);
- a service's own exception travels with its type name and traceback (see `lonja.config.wire`);
- a request over `limits.max_message_size` (after decompression) gets "message too large" as its
  answer, and the connection stays usable (the shared `GuardedDaemon.receive_request`);
- the daemon object also answers `describe(object_id)` (signatures and docs) and `stats()`;
- a lonja client's handshake is answered with the object's `@idempotent` and generator methods.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import marshal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from Pyro5 import client, config, core, errors, protocol, serializers
from Pyro5.callcontext import current_context
from Pyro5.server import (
    DaemonObject,
    _get_attribute,
    _get_exposed_property_value,
    _set_exposed_property_value,
    _unpack_weakref,
    expose,
)

from lonja.config import import_pyro
from lonja.config.auth import TokenTable
from lonja.config.connection import peer_address
from lonja.config.daemon import GuardedDaemon, set_correlation_id
from lonja.config.limits import Limits
from lonja.config.wire import SLOW, SLOW_CALL, TRACEBACK, install_encoder, is_lonja_handshake, server_handshake

from .describe import call_hints, describe

log = logging.getLogger("lonja.services")

import_pyro()
install_encoder()


@expose
class HostDaemonObject(DaemonObject):
    """Pyro5's daemon object (`Pyro.Daemon`) plus lonja's introspection and counters."""

    def describe(self, objectId: str) -> dict[str, Any]:
        """Methods with signatures and docs, attributes and oneway flags of a hosted object."""
        obj = _unpack_weakref(self.daemon.objectsById.get(objectId))
        if obj is None:
            raise errors.DaemonError(f"unknown object {objectId!r}")
        return describe(obj)

    def stats(self) -> dict[str, int]:
        """Counters of this host: oneway calls done and failed, calls served, live threads."""
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
    """A guarded daemon with bounded oneway execution, async methods and faithful remote exceptions."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, limits: Limits | None = None, *,
                 oneway_workers: int = 8, servertype: str = "adaptive", max_threads: int = 64,
                 tokens: TokenTable | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, limits or Limits(), servertype=servertype, threads=max_threads, tokens=tokens,
                         interface=HostDaemonObject, **kwargs)
        self._oneway = ThreadPoolExecutor(max_workers=oneway_workers, thread_name_prefix="lonja-oneway")
        self._loop = EventLoopThread()
        self._counts = {"calls": 0, "oneway_submitted": 0, "oneway_done": 0, "oneway_failed": 0}
        self._counts_lock = threading.Lock()
        self._durations: dict[Any, float] = {}  # recent seconds per method, for the adaptive server

    def stats(self) -> dict[str, int]:
        with self._counts_lock:
            counts = dict(self._counts)
        counts["threads"] = threading.active_count()
        counts["oneway_pending"] = counts["oneway_submitted"] - counts["oneway_done"] - counts["oneway_failed"]
        return counts

    def close(self) -> None:
        super().close()
        self._oneway.shutdown(wait=False, cancel_futures=True)
        self._loop.close()

    def handshake_reply(self, conn: Any, data: Any) -> Any:
        """A lonja client also learns its object's idempotent and generator methods."""
        if is_lonja_handshake(data):
            obj = _unpack_weakref(self.objectsById.get(data.get("object")))
            return server_handshake(**(call_hints(obj) if obj is not None else {}))
        return super().handshake_reply(conn, data)

    def _count(self, key: str) -> None:
        with self._counts_lock:
            self._counts[key] += 1

    def _invoke(self, method: Any, vargs: Any, kwargs: Any) -> Any:
        """Run one call; one known to take a while hands the socket loop to another thread first."""
        key = getattr(method, "__func__", method)
        if self._durations.get(key, 0.0) > SLOW_CALL and hasattr(self.transportServer, "hand_over"):
            self.transportServer.hand_over()
        started = time.perf_counter()
        try:
            result = method(*vargs, **kwargs)
            if inspect.iscoroutine(result):
                result = self._loop.run(result)
            return result
        finally:
            seconds = time.perf_counter() - started
            previous = self._durations.get(key)
            self._durations[key] = seconds if previous is None else 0.7 * previous + 0.3 * seconds

    def _run_oneway(self, method: Any, vargs: Any, kwargs: Any, context: dict, client_addr: Any) -> None:
        current_context.from_global(context)
        try:
            self._invoke(method, vargs, kwargs)
        except Exception as exc:
            self._count("oneway_failed")
            log.error("oneway call %s failed: %s: %s", getattr(method, "__name__", method), type(exc).__name__, exc)
            self.methodcall_error_handler(self, client_addr, method, vargs, kwargs, exc)
        else:
            self._count("oneway_done")

    def handleRequest(self, conn: Any) -> None:
        """Receive one request on `conn`, run it, and send the reply (Pyro5's protocol, unchanged).

        Pyro5 has no hook between decoding a request and invoking the method, so the dispatch is lonja's
        own; receiving (the size limit, refused serializers) is the shared daemon base's.
        """
        msg = self.receive_request(conn)
        if msg is None:
            return
        flags, seq, serializer_id = msg.flags, msg.seq, msg.serializer_id
        is_callback = False
        try:
            set_correlation_id(msg)
            if msg.type == protocol.MSG_PING:
                self._send(conn, protocol.MSG_PING, 0, seq, serializer_id, b"pong")
                return
            obj, method_name, vargs, kwargs = self._decode(conn, msg)
            del msg
            if not isinstance(obj, HostDaemonObject):  # the host's own introspection is not a call it serves
                self._count("calls")
            if flags & protocol.FLAGS_BATCH:
                data = self._run_batch(obj, vargs)
            elif method_name == "__getattr__":
                data = _get_exposed_property_value(obj, vargs[0])
            elif method_name == "__setattr__":
                data = _set_exposed_property_value(obj, vargs[0], vargs[1])
            else:
                method = _get_attribute(obj, method_name)
                if flags & protocol.FLAGS_ONEWAY:
                    self._count("oneway_submitted")
                    self._oneway.submit(self._run_oneway, method, vargs, kwargs, current_context.to_global(),
                                        current_context.client_sock_addr)
                    return
                is_callback = getattr(method, "_pyroCallback", False)
                data = self._run_call(method, vargs, kwargs)
            if flags & protocol.FLAGS_ONEWAY:
                return
            self._reply(conn, seq, serializer_id, data, batched=bool(flags & protocol.FLAGS_BATCH))
        except Exception as exc:
            answerable = not (isinstance(exc, errors.ConnectionClosedError) or flags & protocol.FLAGS_ONEWAY)
            reportable = isinstance(exc, errors.SerializeError) or not isinstance(exc, errors.CommunicationError)
            if answerable and reportable:
                tblines = errors.format_traceback(detailed=config.DETAILED_TRACEBACK)
                self._sendExceptionResponse(conn, seq, serializer_id, exc, tblines)
            if is_callback or isinstance(exc, (errors.CommunicationError, errors.SecurityError)):
                raise

    def _decode(self, conn: Any, msg: Any) -> tuple[Any, str, Sequence[Any], dict[str, Any]]:
        """The target object, method name and arguments of a request; the call context is set from it."""
        vargs: Sequence[Any]
        if msg.flags & protocol.FLAGS_KEEPSERIALIZED:  # BLBI was checked by receive_request
            blobinfo, obj_id, method_name = marshal.loads(msg.annotations["BLBI"])
            vargs, kwargs = (client.SerializedBlob(blobinfo, msg, is_blob=True),), {}
        else:
            obj_id, method_name, vargs, kwargs = serializers.serializers_by_id[msg.serializer_id].loadsCall(msg.data)
        current_context.client = conn
        current_context.client_sock_addr = peer_address(conn)
        current_context.seq = msg.seq
        current_context.annotations = msg.annotations
        current_context.msg_flags = msg.flags
        current_context.serializer_id = msg.serializer_id
        obj = _unpack_weakref(self.objectsById.get(obj_id))
        if obj is None:
            log.debug("unknown object requested: %s", obj_id)
            raise errors.DaemonError("unknown object")
        if inspect.isclass(obj):
            obj = self._getInstance(obj, conn)
        return obj, method_name, vargs, kwargs or {}

    def _run_call(self, method: Any, vargs: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        try:
            result = self._invoke(method, vargs, kwargs)
        except Exception as exc:
            self.methodcall_error_handler(self, current_context.client_sock_addr, method, vargs, kwargs, exc)
            raise
        if self._is_slow(method):
            current_context.response_annotations[SLOW] = b""
        return result

    def _is_slow(self, method: Any) -> bool:
        """True if `method`'s calls average over SLOW_CALL on this host."""
        return self._durations.get(getattr(method, "__func__", method), 0.0) > SLOW_CALL

    def _run_batch(self, obj: Any, calls: Sequence[Any]) -> list[Any]:
        """Run a batch's calls in order; the first failure ends it, its exception the last result."""
        results: list[Any] = []
        slow: set[str] = set()
        for method_name, call_vargs, call_kwargs in calls:
            method = _get_attribute(obj, method_name)
            try:
                results.append(self._invoke(method, call_vargs, call_kwargs or {}))
                if self._is_slow(method):
                    slow.add(method_name)
            except Exception as exc:
                self.methodcall_error_handler(self, current_context.client_sock_addr, method,
                                              call_vargs, call_kwargs, exc)
                setattr(exc, TRACEBACK, errors.format_traceback(detailed=config.DETAILED_TRACEBACK))
                results.append(core._ExceptionWrapper(exc).__serialized_dict__())  # marshal-safe
                break
        if slow:
            current_context.response_annotations[SLOW] = ",".join(sorted(slow)).encode()
        return results

    def _reply(self, conn: Any, seq: int, serializer_id: int, data: Any, batched: bool) -> None:
        """Send a call's result, or start streaming it when it is an iterator."""
        serializer = serializers.serializers_by_id[serializer_id]
        if not batched:
            is_stream, data = self._streamResponse(data, conn)
            if is_stream:
                error = errors.ProtocolError("result of call is an iterator")
                annotations = {"STRM": data.encode()} if data else {}
                self._sendExceptionResponse(conn, seq, serializer_id, error, None,
                                            annotations=annotations, flags=protocol.FLAGS_ITEMSTREAMRESULT)
                return
        self._send(conn, protocol.MSG_RESULT, protocol.FLAGS_BATCH if batched else 0, seq, serializer_id,
                   serializer.dumps(data))

    def _send(self, conn: Any, msg_type: int, flags: int, seq: int, serializer_id: int, payload: bytes) -> None:
        reply = protocol.SendingMessage(msg_type, flags, seq, serializer_id, payload,
                                        annotations=self._response_annotations())
        current_context.response_annotations = {}
        conn.send(reply.data)

    def _response_annotations(self) -> dict[str, bytes]:
        annotations = current_context.response_annotations
        annotations.update(self.annotations())
        return annotations
