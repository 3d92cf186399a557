"""The Pyro5 daemon that lonja's name server and service hosts share: one handshake, one token check,
one size-checked receive.

Pyro5's `Daemon` reads the connect message without a size limit after decompression and decodes it with
whatever serializer the peer names; it checks no token; and each request is read with Pyro5's own size
check, which counts compressed bytes. `GuardedDaemon` answers the handshake itself (called by
`GuardedServer` with a connect message already read under `limits.max_connect_size`), refuses marshal
unless `limits.accept_marshal` is set, identifies the caller from its token, and reads every request
through `wire.receive` under `limits.max_message_size`, answering an oversized one with "message too
large (N > M)" on a connection that stays usable.

It also dispatches every request itself (`handleRequest`): Pyro5's reads the request on its own (so a
checked one had to be re-encoded for it to read again) and has no hook between decoding a request and
invoking the method. The name server uses this dispatch as it is; service hosts add their executor,
timings and counters through the `_invoke`, `_run_call`, `_run_batch`, `_start_oneway` and `_note_call`
hooks.
"""

from __future__ import annotations

import inspect
import logging
import marshal
import random
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from Pyro5 import client, config, core, errors, protocol, serializers
from Pyro5.callcontext import current_context
from Pyro5.server import (
    Daemon,
    DaemonObject,
    _get_attribute,
    _get_exposed_property_value,
    _set_exposed_property_value,
    _unpack_weakref,
)

from .auth import AuthError, TokenTable
from .connection import peer_address
from .limits import Limits, peer_of
from .pyro import transport_chosen
from .serializers import check_marshal
from .transport import GuardedServer, peer_log
from .wire import SLOW_CALL, TooLarge, handshake_token, is_lonja_handshake, receive, server_handshake

log = logging.getLogger("lonja.daemon")

SERVER_TYPES = ("adaptive", "multiplex", "thread")


class GuardedDaemon(Daemon):
    """A Pyro5 daemon on lonja's guarded transport (or Pyro5's `thread` one), with lonja's handshake.

    `servertype`: "adaptive" (leader/followers, up to `threads` at once), "multiplex" (one thread,
    one call at a time) or Pyro5's own "thread" server (a thread per connection, without lonja's
    connection guards). `tokens`: when set, every connection is identified by its token
    (`conn.lonja_identity`) and refused if the token is.
    """

    def __init__(self, host: str, port: int, limits: Limits, *, servertype: str = "adaptive", threads: int = 64,
                 tokens: TokenTable | None = None, interface: type = DaemonObject, **kwargs: Any) -> None:
        if servertype not in SERVER_TYPES:
            raise ValueError(f"servertype must be one of {SERVER_TYPES}")
        self.limits = limits
        self.tokens = tokens
        self.servertype = servertype
        self._durations: dict[Any, float] = {}  # recent seconds per method: slow ones free the loop first
        pyro_type = "thread" if servertype == "thread" else "multiplex"
        with transport_chosen(pyro_type):
            super().__init__(host=host, port=port, interface=interface, **kwargs)
        if servertype != "thread":
            self.transportServer.__class__ = GuardedServer  # same state, lonja's loop on top
            self.transportServer.start_pool(limits, threads if servertype == "adaptive" else 1,
                                            self.answer_handshake)

    # -- the handshake --------------------------------------------------------------------------------

    def answer_handshake(self, conn: Any, message: Any, refusal: str | None) -> bool:
        """Answer one complete connect message, as Pyro5's `_handshake` does; True if the peer is accepted.

        `refusal`, when given, is the answer (the transport is at a connection limit).
        """
        serializer_id = message.serializer_id
        answer_in = serializers.serializers_by_id.get(serializer_id)
        if answer_in is None:
            peer_log.warning(peer_of(conn), f"handshake in unknown serializer {serializer_id}")
            return False
        set_correlation_id(message)
        try:
            reason = refusal or self.limits.refuses_serializer(serializer_id)
            if reason:
                raise errors.SecurityError(reason)
            data = answer_in.loads(message.data)
            if not isinstance(data, dict) or not isinstance(data.get("object"), str):
                raise errors.ProtocolError("malformed connect message")
            response = {"handshake": self.validateHandshake(conn, data.get("handshake")),
                        "meta": self.objectsById[core.DAEMON_NAME].get_metadata(data["object"])}
            payload, msg_type = answer_in.dumps(response), protocol.MSG_CONNECTOK
        except Exception as exc:
            if not refusal:
                peer_log.warning(peer_of(conn), f"handshake refused: {exc}")
            payload, msg_type = answer_in.dumps(str(exc)), protocol.MSG_CONNECTFAIL
        reply = protocol.SendingMessage(msg_type, 0, message.seq, serializer_id, payload,
                                        annotations=self.annotations())
        conn.send(reply.data)
        return msg_type == protocol.MSG_CONNECTOK

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        """Identify the caller by its token (when this daemon checks tokens), then answer with `handshake_reply`."""
        if self.tokens is not None:
            try:
                conn.lonja_identity = self.tokens.identify(handshake_token(data))
            except AuthError as exc:
                raise errors.SecurityError(str(exc)) from None
        return self.handshake_reply(conn, data)

    def handshake_reply(self, conn: Any, data: Any) -> Any:
        """What an accepted peer is told: lonja clients learn that this is lonja; others get Pyro5's "hello"."""
        return server_handshake() if is_lonja_handshake(data) else "hello"

    # -- requests -------------------------------------------------------------------------------------

    def receive_request(self, conn: Any) -> Any:
        """Read one request under the limits; None if it was refused (and answered, unless it was oneway)."""
        try:
            message = receive(conn, [protocol.MSG_INVOKE, protocol.MSG_PING], self.limits.max_message_size)
        except TooLarge as exc:  # read to its end: the connection is in sync, the answer says why
            peer_log.warning(peer_of(conn), f"refused a {'oneway ' if exc.oneway else ''}request: {exc}")
            if not exc.oneway:
                self._sendExceptionResponse(conn, exc.seq, exc.serializer_id,
                                            errors.MessageTooLargeError(str(exc)), [f"lonja: {exc}\n"])
            return None
        reason = self.limits.refuses_serializer(message.serializer_id) or _bad_blob_info(message)
        if reason:
            if not message.flags & protocol.FLAGS_ONEWAY:
                self._sendExceptionResponse(conn, message.seq, message.serializer_id,
                                            errors.SerializeError(reason), [f"lonja: {reason}\n"])
            return None
        return message

    # -- dispatch -------------------------------------------------------------------------------------

    def handleRequest(self, conn: Any) -> None:
        """Receive one request on `conn`, run it, and send the reply (Pyro5's protocol, unchanged)."""
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
            self._note_call(obj)
            if flags & protocol.FLAGS_BATCH:
                data = self._run_batch(obj, vargs)
            elif method_name == "__getattr__":
                data = _get_exposed_property_value(obj, vargs[0])
            elif method_name == "__setattr__":
                data = _set_exposed_property_value(obj, vargs[0], vargs[1])
            else:
                method = _get_attribute(obj, method_name)
                if flags & protocol.FLAGS_ONEWAY:
                    self._start_oneway(method, vargs, kwargs)
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
        kwargs: dict[str, Any] | None
        if msg.flags & protocol.FLAGS_KEEPSERIALIZED:  # BLBI was checked by receive_request
            blobinfo, obj_id, method_name = marshal.loads(msg.annotations["BLBI"])
            vargs, kwargs = (client.SerializedBlob(blobinfo, msg, is_blob=True),), {}
        else:
            obj_id, method_name, vargs, kwargs = self._loads_call(msg)
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

    def _loads_call(self, msg: Any) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        """Object id, method name and arguments from a request's body."""
        result: tuple[str, str, Sequence[Any], dict[str, Any]] = \
            serializers.serializers_by_id[msg.serializer_id].loadsCall(msg.data)
        return result

    def _note_call(self, obj: Any) -> None:
        """Called for every decoded request (hosts count them)."""

    def _invoke(self, method: Any, vargs: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """Run one call; one known to take a while here (a long poll of the name server's change log, a
        slow service method) hands the socket loop to another thread first, so others are not held up."""
        key = getattr(method, "__func__", method)
        if self._durations.get(key, 0.0) > SLOW_CALL and hasattr(self.transportServer, "hand_over"):
            self.transportServer.hand_over()
        started = time.perf_counter()
        try:
            return self._run(method, vargs, kwargs)
        finally:
            seconds = time.perf_counter() - started
            previous = self._durations.get(key)
            self._durations[key] = seconds if previous is None else 0.7 * previous + 0.3 * seconds

    def _run(self, method: Any, vargs: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """The call itself."""
        return method(*vargs, **kwargs)

    def _average(self, method: Any) -> float | None:
        """The recent average seconds of `method`'s calls here; None if it has not run here."""
        return self._durations.get(getattr(method, "__func__", method))

    def _is_slow(self, method: Any) -> bool:
        """True if `method`'s calls average over SLOW_CALL here."""
        return (self._average(method) or 0.0) > SLOW_CALL

    def _is_quick(self, method: Any) -> bool:
        """True if `method` has run here and its calls average SLOW_CALL or less."""
        average = self._average(method)
        return average is not None and average <= SLOW_CALL

    def _run_call(self, method: Any, vargs: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        try:
            return self._invoke(method, vargs, kwargs)
        except Exception as exc:
            self.methodcall_error_handler(self, current_context.client_sock_addr, method, vargs, kwargs, exc)
            raise

    def _run_batch(self, obj: Any, calls: Sequence[Any]) -> list[Any]:
        """Run a batch's calls in order; the first failure ends it, its exception the last result."""
        results: list[Any] = []
        for method_name, call_vargs, call_kwargs in calls:
            method = _get_attribute(obj, method_name)
            try:
                results.append(self._invoke(method, call_vargs, call_kwargs or {}))
            except Exception as exc:
                self.methodcall_error_handler(self, current_context.client_sock_addr, method,
                                              call_vargs, call_kwargs, exc)
                exc._pyroTraceback = errors.format_traceback(detailed=config.DETAILED_TRACEBACK)  # type: ignore[attr-defined]
                results.append(core._ExceptionWrapper(exc).__serialized_dict__())  # marshal-safe
                break
        return results

    def _start_oneway(self, method: Any, vargs: Sequence[Any], kwargs: dict[str, Any]) -> None:
        """Run a oneway call without holding up the connection: on a thread of its own, as Pyro5 does."""
        context, client_addr = current_context.to_global(), current_context.client_sock_addr

        def run() -> None:
            current_context.from_global(context)
            try:
                self._invoke(method, vargs, kwargs)
            except Exception as exc:
                log.error("oneway call %s failed: %s: %s", getattr(method, "__name__", method), type(exc).__name__, exc)
                self.methodcall_error_handler(self, client_addr, method, vargs, kwargs, exc)

        threading.Thread(target=run, name="lonja-oneway", daemon=True).start()

    def _reply(self, conn: Any, seq: int, serializer_id: int, data: Any, batched: bool) -> None:
        """Send a call's result, or start streaming it when it is an iterator."""
        if not batched:
            is_stream, data = self._streamResponse(data, conn)
            if is_stream:
                error = errors.ProtocolError("result of call is an iterator")
                annotations = {"STRM": data.encode()} if data else {}
                self._sendExceptionResponse(conn, seq, serializer_id, error, None,
                                            annotations=annotations, flags=protocol.FLAGS_ITEMSTREAMRESULT)
                return
        self._send(conn, protocol.MSG_RESULT, protocol.FLAGS_BATCH if batched else 0, seq, serializer_id,
                   self._dumps_result(serializer_id, data))

    def _dumps_result(self, serializer_id: int, data: Any) -> bytes:
        """A result's bytes in the caller's serializer."""
        payload: bytes = serializers.serializers_by_id[serializer_id].dumps(data)
        return payload

    def _send(self, conn: Any, msg_type: int, flags: int, seq: int, serializer_id: int, payload: bytes) -> None:
        annotations = current_context.response_annotations
        annotations.update(self.annotations())
        reply = protocol.SendingMessage(msg_type, flags, seq, serializer_id, payload, annotations=annotations)
        current_context.response_annotations = {}
        conn.send(reply.data)


def _bad_blob_info(message: Any) -> str | None:
    """Why the marshal-encoded annotation of a SerializedBlob call is refused (Pyro5 loads it unchecked)."""
    blob_info = message.annotations.get("BLBI")
    if blob_info is None:
        return None
    try:
        check_marshal(blob_info)
    except ValueError as exc:
        return f"malformed blob annotation: {exc}"
    return None


def set_correlation_id(message: Any) -> None:
    """The call context's correlation id: the one a message carries, else a new random one (as Pyro5 does)."""
    if message.flags & protocol.FLAGS_CORR_ID:
        current_context.correlation_id = _uuid(int.from_bytes(message.corr_id, "big"))
    else:  # a random id for tracing, not a secret: no system call for it (uuid4 asks the kernel)
        current_context.correlation_id = _uuid(random.getrandbits(128) & _VERSION_4_CLEAR | _VERSION_4_SET)


_VERSION_4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_VERSION_4_SET = (0x8000 << 48) | (4 << 76)


def _uuid(value: int) -> uuid.UUID:
    """`uuid.UUID(int=value)` for a value known to fit, without its argument checks: a third of the time,
    once per request. Its two slots are set as `UUID.__init__` sets them."""
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", uuid.SafeUUID.unknown)
    return made
