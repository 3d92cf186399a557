"""The Pyro5 daemon that lonja's name server and service hosts share: one handshake, one token check,
one size-checked receive.

Pyro5's `Daemon` reads the connect message without a size limit after decompression and decodes it with
whatever serializer the peer names; it checks no token; and each request is read with Pyro5's own size
check, which counts compressed bytes. `GuardedDaemon` answers the handshake itself (called by
`GuardedServer` with a connect message already read under `limits.max_connect_size`), refuses marshal
unless `limits.accept_marshal` is set, identifies the caller from its token, and reads every request
through `wire.receive` under `limits.max_message_size`, answering an oversized one with "message too
large (N > M)" on a connection that stays usable.
"""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any

from Pyro5 import core, errors, protocol, serializers
from Pyro5.callcontext import current_context
from Pyro5.server import Daemon, DaemonObject

from .auth import AuthError, TokenTable
from .limits import Limits, peer_of
from .pyro import transport_chosen
from .serializers import check_marshal
from .transport import GuardedServer, peer_log
from .wire import TooLarge, handshake_token, is_lonja_handshake, receive, server_handshake

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
    """The call context's correlation id: the one a message carries, else a new one (as Pyro5 does)."""
    if message.flags & protocol.FLAGS_CORR_ID:
        current_context.correlation_id = uuid.UUID(bytes=message.corr_id)
    else:  # a random id for tracing, not a secret: no system call for it (uuid4 asks the kernel)
        current_context.correlation_id = uuid.UUID(int=random.getrandbits(128), version=4)
