"""What both sides of a lonja connection agree on: the handshake's data, and receiving one Pyro5 message
under lonja's size limit, counted after decompression.

A lonja client's connect message carries `client_handshake(token, object_id)`: a dict that tells the
server it speaks lonja, with the caller's token. Plain Pyro5 clients send a string instead; servers tell
the two apart with `is_lonja_handshake` and read the token with `handshake_token`.

Pyro5 checks a message's size as sent (compressed) and then decompresses it without bound, so a 50 MB
argument compressed to 50 KB passes a 100 KB limit. Here the declared size is checked first, and the
payload is decompressed with a bound. A message over the limit is read to its end (so the connection
stays in sync) and reported as `TooLarge`, which servers answer with "message too large (N > M)". One
whose payload is too large even to read and discard closes the connection instead (logged).
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Sequence
from typing import Any

from Pyro5 import errors, protocol

from .limits import peer_of

DRAIN_LIMIT = 256 * 1024 * 1024
"""Most bytes read and thrown away (or unzipped, to count them) for a clear answer; past it, the
connection is closed instead."""
_CHUNK = 1024 * 1024

log = logging.getLogger("lonja.wire")


HANDSHAKE_VERSION = 1


def client_handshake(token: str = "", object_id: str | None = None) -> dict[str, Any]:
    """The handshake data a lonja client sends: lonja's marker, its token, and the object it wants."""
    data: dict[str, Any] = {"lonja": HANDSHAKE_VERSION, "token": token}
    if object_id is not None:
        data["object"] = object_id
    return data


def is_lonja_handshake(data: Any) -> bool:
    """True if a connect message's handshake data came from a lonja client."""
    return isinstance(data, dict) and bool(data.get("lonja"))


def handshake_token(data: Any) -> str | None:
    """The token in a connect message's handshake data (None from plain Pyro5 clients)."""
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) else None


def server_handshake(**extra: Any) -> dict[str, Any]:
    """What a lonja server answers a lonja client's handshake with (plus what the server adds)."""
    return {"lonja": HANDSHAKE_VERSION, **extra}


class TooLarge(Exception):
    """A message over the limit, already read to its end: answer it (unless `oneway`) on the same connection."""

    def __init__(self, message: Any, size: str, limit: int, after_decompression: bool) -> None:
        where = " after decompression" if after_decompression else ""
        super().__init__(f"message too large ({size} > {limit} bytes{where}): "
                         f"send less per call, or raise limits.max_message_size on the server")
        self.seq = message.seq
        self.serializer_id = message.serializer_id
        self.oneway = bool(message.flags & protocol.FLAGS_ONEWAY)


def receive(connection: Any, accepted: Sequence[int], limit: int) -> protocol.ReceivingMessage:
    """Read one message from `connection`, as Pyro5's `recv_stub` does, but under `limit` bytes counted
    after decompression: TooLarge if over it, ConnectionClosedError if too large even to drain."""
    header = connection.recv(6)
    protocol.ReceivingMessage.validate(header)
    header += connection.recv(protocol._header_size - 6)
    protocol.ReceivingMessage.validate(header)  # tag, version and magic number
    # Pyro5's own parsing, minus its check against the process-wide MAX_MESSAGE_SIZE: the limit is ours.
    message = protocol.ReceivingMessage.__new__(protocol.ReceivingMessage)
    (_, _, message.type, message.serializer_id, message.flags, message.seq, message.data_size,
     message.annotations_size, message.corr_id, _, _) = struct.unpack(protocol._header_format, header)
    message.data, message.annotations = None, {}
    if accepted and message.type not in accepted:
        error = errors.ProtocolError(f"invalid msg type {message.type} received")
        error.pyroMsg = message
        raise error
    declared = message.data_size + message.annotations_size
    if declared > limit:
        if declared > DRAIN_LIMIT:
            log.warning("closing the connection from %s: it sends a message of %d bytes (the limit is %d, "
                        "and more than %d bytes are not read just to refuse them)",
                        peer_of(connection), declared, limit, DRAIN_LIMIT)
            raise errors.ConnectionClosedError(f"message of {declared} bytes refused, connection closed")
        _drain(connection, declared)
        raise TooLarge(message, str(declared), limit, after_decompression=False)
    payload = connection.recv(declared)
    compressed = message.flags & protocol.FLAGS_COMPRESSED
    message.flags &= ~protocol.FLAGS_COMPRESSED  # Pyro5 would unzip without bound: we do it below
    message.add_payload(payload)
    if compressed:
        message.data = _inflate(message, limit - message.annotations_size, limit)
        message.data_size = len(message.data)
    return message


def _inflate(message: Any, room: int, limit: int) -> bytearray:
    """Unzip a payload a chunk at a time into one growing buffer (a one-shot unzip peaks at twice the
    size), stopping as soon as it exceeds `room`: TooLarge then."""
    inflater = zlib.decompressobj()
    data = bytearray()
    pending = message.data
    while pending and len(data) <= room:
        data += inflater.decompress(pending, _CHUNK)
        pending = inflater.unconsumed_tail
    if len(data) <= room:
        data += inflater.flush()
    if len(data) > room:
        raise TooLarge(message, _inflated_size(inflater, len(data) + message.annotations_size), limit,
                       after_decompression=True)
    return data


def _inflated_size(inflater: Any, size: int) -> str:
    """Unzip the rest (thrown away) to count it, up to DRAIN_LIMIT: "N", or "more than N" past it."""
    while inflater.unconsumed_tail and size <= DRAIN_LIMIT:
        size += len(inflater.decompress(inflater.unconsumed_tail, _CHUNK))
    if inflater.unconsumed_tail:
        return f"more than {size}"
    return str(size + len(inflater.flush()))


def _drain(connection: Any, size: int) -> None:
    while size > 0:
        size -= len(connection.recv(min(_CHUNK, size)))
